import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OFFLINE_NIX_CONFIG } from '../../src/builder/nix-build.ts';
import { loadConfig, type ConfigKey } from '../../src/config/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { startServer, type RunningServer } from '../../src/server/serve.ts';

/** The first admin's password on servers started by startApiServer. */
export const ADMIN_PASSWORD = 'correct horse battery staple';

/** A server with the api and builder roles on SQLite and port 0, signed in as the first admin. */
export interface ApiServer {
  server: RunningServer;
  /** e.g. `http://127.0.0.1:41234` */
  url: string;
  adminToken: string;
  /** Calls the API as the admin; fails on an error status. */
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** Starts the api and builder roles in this process, building with the given Nix entry. */
export async function startApiServer(nixEntry: string, env: Partial<Record<ConfigKey, string>> = {}, roles: Array<'api' | 'builder'> = ['api', 'builder']): Promise<ApiServer> {
  // The stand-in entries build from host tools: offline, without build users or sandbox.
  process.env.NIX_CONFIG ??= OFFLINE_NIX_CONFIG;
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-cli-data-'));
  const config = loadConfig(
    {
      METAL_DATA_DIR: dataDir,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: 'http://127.0.0.1:9',
      METAL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      METAL_NIX_ENTRY: nixEntry,
      METAL_ENROLL_RATE: '0',
      METAL_BUILD_UNSANDBOXED: '1',
      METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
      ...env,
    },
    {},
  );
  const server = await startServer(config, createLogger(config.logLevel), roles);
  const url = server.addresses.api!;
  const login = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) });
  if (!login.ok) throw new Error(`admin login failed: ${login.status} ${await login.text()}`);
  const adminToken = ((await login.json()) as { token: string }).token;
  return {
    server,
    url,
    adminToken,
    async api<T>(method: string, path: string, body?: unknown): Promise<T> {
      const response = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    },
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Whether nix-build is on PATH; outside CI its absence skips loudly, in CI it is an error. */
export function hasNixBuild(): boolean {
  const found = (process.env.PATH ?? '/usr/bin:/bin').split(':').some((dir) => dir && existsSync(join(dir, 'nix-build')));
  if (!found) {
    if (process.env.CI === 'true') throw new Error('nix-build is required in CI for the metal build tests');
    console.warn('\n*** SKIPPING the `metal build` tests: nix-build is not installed (apt-get install nix-bin) ***\n');
  }
  return found;
}
