import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { loadConfig, type Config, type ConfigKey } from '../../src/config/config.ts';
import type { Actor, Role } from '../../src/core/types.ts';
import type { Authenticator } from '../../src/http/access.ts';
import { createContext, type AppContext, type ContextOptions } from '../../src/server/context.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { Schema } from '../../src/storage/schema.ts';
import type { SqlStorage } from '../../src/storage/storage.ts';
import type { TestDatabase } from './databases.ts';
import { macOfTag } from './mac-of-tag.ts';

export { macOfTag };

/**
 * Reads `x-test-role: admin|operator|viewer` as the caller's role: for tests of parts other than
 * authentication, which have their own suite.
 */
export const headerAuthenticator: Authenticator = {
  async authenticate(request) {
    const role = request.headers['x-test-role'];
    if (role !== 'admin' && role !== 'operator' && role !== 'viewer') return undefined;
    return { kind: 'user', name: `test-${role}`, role: role as Role } satisfies Actor;
  },
};

export interface TestContext {
  ctx: AppContext;
  config: Readonly<Config>;
  dataDir: string;
  close(): Promise<void>;
}

/** A full context on a fresh database and a temporary data directory. */
export async function createTestContext(
  db: TestDatabase,
  env: Partial<Record<ConfigKey, string>> = {},
  authenticator: Authenticator = headerAuthenticator,
  /** More context options (e.g. fake power drivers), and a logger to use instead of a silent one. */
  extra: Omit<ContextOptions, 'authenticator'> & { logger?: AppContext['logger'] } = {},
): Promise<TestContext> {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-data-'));
  const config = loadConfig(
    {
      METAL_DATA_DIR: dataDir,
      METAL_DATABASE_URL: db.url,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: 'http://10.0.2.100',
      METAL_BUILD_UNSANDBOXED: '1',
      METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
      ...env,
    },
    {},
  );
  const { logger, ...options } = extra;
  const ctx = await createContext(config, logger ?? createLogger(config.logLevel), { ...options, authenticator });
  return {
    ctx,
    config,
    dataDir,
    async close() {
      await ctx.close();
      await db.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A payload like the one the registration agent sends. */
export function enrollmentPayload(serviceTag: string, overrides: Record<string, unknown> = {}) {
  const mac = macOfTag(serviceTag);
  return {
    service_tag: serviceTag,
    mac_address: mac,
    hardware: {
      manufacturer: 'Dell Inc.',
      model: 'PowerEdge R740',
      serial: serviceTag,
      cpu: { model: 'Intel(R) Xeon(R) Gold 6230', architecture: 'x86_64', sockets: 2, cores: 40, threads: 80 },
      memory: { total_bytes: 412316860416 },
      disks: [{ name: 'sda', size_bytes: 960197124096, model: 'SSDSC2KG96', serial: 'X1', rotational: false }],
      nics: [{ name: 'eno1', mac, driver: 'bnxt_en', speed_mbps: 25000, link: true }],
    },
    ...overrides,
  };
}

/** The SQL handle under a test context's storage, for tests that set up or inspect rows directly. */
export function sqlOf(ctx: AppContext): Kysely<Schema> {
  return (ctx.storage as SqlStorage).database.db;
}
