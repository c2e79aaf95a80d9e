import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

/** nginx in front of the replicas: one loopback address for the API, one for the boot servers. */
export interface LoadBalancer {
  apiUrl: string;
  bootUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** A free loopback port (bound, then released for nginx to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function hostPort(url: string): string {
  return new URL(url).host;
}

/**
 * The configuration: round robin over the replicas; a replica that refuses a connection or answers 502
 * is skipped (once marked failed, for 10 s), and a request that never reached one goes to the next.
 * Log streams are passed through unbuffered.
 */
export function nginxConfig(dir: string, ports: { api: number; boot: number }, upstreams: { api: string[]; boot: string[] }): string {
  const servers = (urls: string[]) => urls.map((u) => `    server ${hostPort(u)} max_fails=1 fail_timeout=10s;`).join('\n');
  // As root, nginx's workers would otherwise become nobody and lose the temporary folders.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering off;
  proxy_read_timeout 120s;
  proxy_connect_timeout 2s;
  proxy_next_upstream error timeout http_502;
  proxy_next_upstream_tries 2;
  upstream metal_api {
${servers(upstreams.api)}
    keepalive 32;
  }
  upstream metal_boot {
${servers(upstreams.boot)}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${ports.api};
    location / { proxy_pass http://metal_api; }
  }
  server {
    listen 127.0.0.1:${ports.boot};
    location / { proxy_pass http://metal_boot; }
  }
}
`;
}

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nginx: nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Starts Debian's nginx (`nginx`: its path) with its own prefix in `dir`, in the foreground, on `ports`. */
export async function startLoadBalancer(
  nginx: string,
  dir: string,
  upstreams: { api: string[]; boot: string[] },
  ports: { api: number; boot: number },
): Promise<LoadBalancer> {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, ports, upstreams));
  const child = spawn(nginx, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      Promise.all([waitForPort(ports.api, 10_000), waitForPort(ports.boot, 10_000)]),
      exited.then(() => Promise.reject(new Error(`nginx exited at start: ${stderr}`))),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    apiUrl: `http://127.0.0.1:${ports.api}`,
    bootUrl: `http://127.0.0.1:${ports.boot}`,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
