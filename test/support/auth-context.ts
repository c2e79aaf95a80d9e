import { buildApiServer, type ApiServerOptions } from '../../src/server/roles.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type ConfigKey } from '../../src/config/config.ts';
import { createContext, type AppContext } from '../../src/server/context.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { TestDatabase } from './databases.ts';

/** The first admin's password in contexts made by createAuthTestContext. */
export const TEST_ADMIN_PASSWORD = 'correct horse battery staple';

export interface AuthTestContext {
  ctx: AppContext;
  app: FastifyInstance;
  dataDir: string;
  /** Signs in and returns an `ms_…` session token (fails the test on any other answer). */
  login(username: string, password: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A context with the REAL authenticator (sessions, API tokens, cookie, CSRF) and an API server, on a
 * fresh database, with `admin` / TEST_ADMIN_PASSWORD: for tests of authentication and of the dashboard's sign-in.
 */
export async function createAuthTestContext(db: TestDatabase, env: Partial<Record<ConfigKey, string>> = {}, apiOptions: ApiServerOptions = {}): Promise<AuthTestContext> {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-auth-'));
  const config = loadConfig({
    METAL_DATA_DIR: dataDir,
    METAL_DATABASE_URL: db.url,
    METAL_LISTEN: '127.0.0.1:0',
    METAL_BOOT_LISTEN: '127.0.0.1:0',
    METAL_BOOT_URL: 'http://10.0.2.100',
    METAL_BUILD_UNSANDBOXED: '1',
    METAL_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const ctx = await createContext(config, createLogger(config.logLevel));
  const app = await buildApiServer(ctx, [], apiOptions);
  return {
    ctx,
    app,
    dataDir,
    async login(username, password) {
      const r = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password } });
      if (r.statusCode !== 200) throw new Error(`login as ${username}: ${r.statusCode} ${r.body}`);
      return (r.json() as { token: string }).token;
    },
    async close() {
      await app.close();
      await ctx.close();
      await db.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
