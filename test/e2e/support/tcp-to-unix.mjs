// Run inside a test network namespace: accepts TCP on HOST:PORT and pipes each connection to the
// Unix socket PATH (file-system sockets cross namespaces), where the test's boot server listens.
// Usage: node tcp-to-unix.mjs HOST PORT PATH
import { createConnection, createServer } from 'node:net';

const [host, port, path] = process.argv.slice(2);
const server = createServer((client) => {
  const upstream = createConnection(path);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(Number(port), host, () => console.log(`forwarding ${host}:${port} to ${path}`));
process.on('SIGTERM', () => process.exit(0));
