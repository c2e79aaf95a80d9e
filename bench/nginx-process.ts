import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { renderNginxFront } from '../src/boot/nginx-front.ts';
import { onCleanup } from './cleanup.ts';

/** What the generated nginx.conf contains. */
export interface NginxConfigOptions {
  /** Directory nginx keeps its pid, logs and temp files in (`-p`). */
  prefix: string;
  /** Document root served at `/`. */
  root: string;
  port: number;
  /** `sendfile on` (the image reference) or off. */
  sendfile: boolean;
  /** Worker processes: 1 for the script reference, `auto` (one per core) for the image reference. */
  workers?: number | 'auto';
  /** Set when nginx starts as root, so the worker runs as that user rather than `nobody`. */
  user?: string;
  /** A whole `server` block (and what goes with it) instead of the static one on `root`. */
  server?: string;
}

/** The reference server's configuration: one worker, no access log, loopback only, everything in `prefix`. */
export function renderNginxConfig(o: NginxConfigOptions): string {
  for (const [key, value] of Object.entries({ prefix: o.prefix, root: o.root })) {
    if (!/^\/[A-Za-z0-9._/-]+$/.test(value)) throw new Error(`bench: nginx ${key} ${JSON.stringify(value)} is not a plain absolute path`);
  }
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`bench: nginx port ${o.port} is invalid`);
  const workers = o.workers ?? 1;
  if (workers !== 'auto' && (!Number.isInteger(workers) || workers < 1 || workers > 64)) throw new Error(`bench: nginx workers ${workers} is invalid`);
  if (o.user !== undefined && !/^[a-z_][a-z0-9_-]*$/.test(o.user)) throw new Error(`bench: nginx user ${JSON.stringify(o.user)} is invalid`);
  return [
    ...(o.user ? [`user ${o.user};`] : []),
    `worker_processes ${workers};`,
    'daemon off;',
    `pid ${o.prefix}/nginx.pid;`,
    `error_log ${o.prefix}/error.log warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${o.prefix}/client_body;`,
    `  proxy_temp_path ${o.prefix}/proxy;`,
    `  fastcgi_temp_path ${o.prefix}/fastcgi;`,
    `  uwsgi_temp_path ${o.prefix}/uwsgi;`,
    `  scgi_temp_path ${o.prefix}/scgi;`,
    '  default_type application/octet-stream;',
    `  sendfile ${o.sendfile ? 'on' : 'off'};`,
    '  tcp_nopush on;',
    '  keepalive_requests 1000000;',
    '  keepalive_timeout 65;',
    ...(o.server !== undefined ? [o.server] : ['  server {', `    listen 127.0.0.1:${o.port};`, `    root ${o.root};`, '    autoindex off;', '  }']),
    '}',
    '',
  ].join('\n');
}

/** A running nginx reference server. */
export interface NginxProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts nginx (as the current user, `daemon off`) from a generated config in `prefix`; stopped by `stop()` or at bench end. */
export async function startNginx(options: {
  prefix: string;
  root: string;
  sendfile: boolean;
  workers?: number | 'auto';
  /** nginx in front of `metal boot` (the configuration `metal image nginx-config` writes) instead of a static root. */
  front?: { upstream: string; imagesDir: string };
}): Promise<NginxProcess> {
  mkdirSync(options.prefix, { recursive: true });
  const port = await freeLoopbackPort();
  const user = process.getuid?.() === 0 ? 'root' : undefined;
  const confPath = join(options.prefix, 'nginx.conf');
  const { front, ...rest } = options;
  const server = front ? renderNginxFront({ listen: `127.0.0.1:${port}`, upstream: front.upstream, imagesDir: front.imagesDir }) : undefined;
  writeFileSync(confPath, renderNginxConfig({ ...rest, port, ...(user ? { user } : {}), ...(server !== undefined ? { server } : {}) }));
  const child = spawn('nginx', ['-p', options.prefix, '-e', join(options.prefix, 'error.log'), '-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = onCleanup('nginx', async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGQUIT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  try {
    await waitForPort(port, 10_000, () => child.exitCode !== null);
  } catch (err) {
    const log = existsSync(join(options.prefix, 'error.log')) ? readFileSync(join(options.prefix, 'error.log'), 'utf8') : '';
    await stop();
    throw new Error(`bench: nginx did not start: ${(err as Error).message}\n${stderr}${log}`);
  }
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop };
}

/** `nginx -v` output, e.g. `nginx/1.22.1`, or undefined when nginx is missing. */
export function nginxVersion(): string | undefined {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.match(/nginx\/[\w.]+/)?.[0];
}

/** A loopback port nobody listens on right now. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; bounded by `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gaveUp()) throw new Error('the process exited');
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}
