import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OFFLINE_NIX_CONFIG } from '../../../src/builder/nix-build.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { LAB_BOOT_URL } from '../../../src/registration/lab/lab-machine.ts';
import { buildRegistrationImage } from '../../../src/registration/lab/registration-image.ts';
import { createLogger } from '../../../src/core/logger.ts';
import { startServer, type RunningServer } from '../../../src/server/serve.ts';
import type { TestDatabase } from '../../support/databases.ts';
import { EfiSigner } from '../../../src/images/secure-boot.ts';

/** The bootable stand-in for nix/netboot.nix. */
const PROJECT_ROOT = new URL('../../../', import.meta.url).pathname.replace(/\/$/, '');
export const STANDIN_ENTRY = new URL('../nix/standin-netboot.nix', import.meta.url).pathname;

/**
 * Lets nix-build run the stand-in entry in this process and the ones it starts: offline, without
 * build users or sandbox (it builds from host tools), and with the project readable, since
 * evaluation is restricted to the entry's folder and the stand-in reads the lab's init scripts from
 * src/ (a search-path entry makes them readable).
 */
export function prepareStandinEntry(): void {
  process.env.NIX_CONFIG ??= OFFLINE_NIX_CONFIG;
  if (!(process.env.NIX_PATH ?? '').includes('metal-project=')) {
    process.env.NIX_PATH = [process.env.NIX_PATH, `metal-project=${PROJECT_ROOT}`].filter(Boolean).join(':');
  }
}

/** A JSON response: status and parsed body. */
export interface ApiResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A fresh `metal serve` (all roles) for lab machines, with the lab registration image published. */
export interface LabServer {
  server: RunningServer;
  /** The boot listener's port on 127.0.0.1 (QEMU forwards 10.0.2.100:80 to it). */
  bootPort: number;
  /** Calls the REST API as the first admin. */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Resolves once the build leaves pending/building; rejects after `timeoutMs`. */
  waitForBuild(buildId: number, timeoutMs: number): Promise<ApiResponse>;
  stop(): Promise<void>;
}

/**
 * Starts every role in this process on the given database with METAL_BOOT_URL=http://10.0.2.100 (or
 * `options.bootUrl`) and the
 * stand-in Nix entry, builds the lab registration image, and signs in as the first admin.
 */
export async function startLabServer(db: TestDatabase, options: { bootUrl?: string; env?: Record<string, string> } = {}): Promise<LabServer> {
  prepareStandinEntry();
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-e2e-'));
  const password = randomBytes(18).toString('base64url');
  const config = loadConfig(
    {
      METAL_DATA_DIR: dataDir,
      METAL_DATABASE_URL: db.url,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: options.bootUrl ?? LAB_BOOT_URL,
      METAL_NIX_ENTRY: STANDIN_ENTRY,
      METAL_ADMIN_PASSWORD: password,
      METAL_ENROLL_RATE: '0',
      METAL_BUILD_TIMEOUT: '300',
      METAL_BUILD_UNSANDBOXED: '1',
      // The lab's VMs end when the machine powers off.
      METAL_AFTER_ENROLL: 'poweroff',
      METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'warn',
      ...options.env,
    },
    {},
  );
  const cleanup = async () => {
    await db.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  };
  let server: RunningServer;
  try {
    await buildRegistrationImage({ imagesDir: config.imagesDir, signer: config.secureBoot ? EfiSigner.find(config.secureBoot, 'the lab') : undefined });
    server = await startServer(config, createLogger(config.logLevel), ['api', 'boot', 'builder']);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const stop = async () => {
    await server.stop();
    await cleanup();
  };
  try {
    const apiUrl = server.addresses.api!;
    const bootPort = Number(new URL(server.addresses.boot!).port);
    const call = async (method: string, path: string, body?: unknown, token?: string): Promise<ApiResponse> => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch(`${apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    };
    const login = await call('POST', '/api/v1/auth/login', { username: 'admin', password });
    if (login.status !== 200) throw new Error(`e2e: login as admin failed: ${login.status} ${JSON.stringify(login.body)}`);
    const token: string = login.body.token;
    const api = (method: string, path: string, body?: unknown) => call(method, path, body, token);

    const waitForBuild = (buildId: number, timeoutMs: number) =>
      new Promise<ApiResponse>((resolve, reject) => {
        let checking = false;
        let again = false;
        const finish = (err: Error | undefined, value?: ApiResponse) => {
          clearTimeout(timer);
          server.ctx.notifier.off('build.updated', onUpdate);
          if (err) reject(err);
          else resolve(value!);
        };
        const check = async () => {
          if (checking) {
            again = true;
            return;
          }
          checking = true;
          try {
            do {
              again = false;
              const build = await api('GET', `/api/v1/builds/${buildId}`);
              if (build.status !== 200) return finish(new Error(`e2e: GET build ${buildId}: ${build.status} ${JSON.stringify(build.body)}`));
              if (!['pending', 'building'].includes(build.body.status)) return finish(undefined, build);
            } while (again);
          } catch (err) {
            finish(err as Error);
          } finally {
            checking = false;
          }
        };
        const onUpdate = (id: number) => {
          if (id === buildId) void check();
        };
        const timer = setTimeout(() => finish(new Error(`e2e: build ${buildId} did not finish in ${timeoutMs} ms`)), timeoutMs);
        server.ctx.notifier.on('build.updated', onUpdate);
        void check();
      });

    return { server, bootPort, api, waitForBuild, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
