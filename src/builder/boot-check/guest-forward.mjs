// Run by QEMU's user network once for each connection the boot-check VM opens to the check's
// address (`guestfwd=...-cmd:`): its stdin and stdout are that connection, which this joins to the
// boot check's Unix socket. Nothing may be printed: stderr is the connection too.
// Usage: node --no-warnings guest-forward.mjs <socket path>
import { createConnection } from 'node:net';

const upstream = createConnection(process.argv[2] ?? '');
const close = () => process.exit(0);
upstream.on('error', () => process.exit(1));
upstream.on('close', close);
process.stdin.on('error', close);
process.stdout.on('error', close);
process.stdin.pipe(upstream);
upstream.pipe(process.stdout);
