import { spawn } from 'node:child_process';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { stopChild } from './site-dhcp.ts';

/**
 * Makes the boot listener (on 127.0.0.1 in this process's namespace) reachable at `host:port` inside
 * `netns`: a small forwarder there hands each TCP connection over a Unix socket to this process,
 * which connects it to the boot listener. No address outside the test namespaces is used.
 */
export async function forwardBootServer(netns: string, host: string, port: number, bootPort: number, workDir: string): Promise<{ stop(): Promise<void> }> {
  const socketPath = join(workDir, 'boot.sock');
  const server: Server = createServer((conn) => {
    const upstream = createConnection(bootPort, '127.0.0.1');
    conn.pipe(upstream).pipe(conn);
    const close = () => {
      conn.destroy();
      upstream.destroy();
    };
    conn.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const script = new URL('./tcp-to-unix.mjs', import.meta.url).pathname;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, script, host, String(port), socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = async () => {
    await stopChild(child, 3000);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`e2e: the boot forwarder did not start in 10 s: ${out}`)), 10_000);
      child.stdout!.on('data', () => {
        if (out.includes('forwarding')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`e2e: the boot forwarder exited (${code}): ${out}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
