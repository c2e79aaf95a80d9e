import type { FastifyInstance } from 'fastify';
import type { ConfigKey } from '../../src/config/config.ts';
import type { BootServerOptions } from '../../src/boot/boot-server.ts';
import { buildApiServer, buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, type TestContext } from './context.ts';
import type { TestDatabase } from './databases.ts';

/** A test context with its API and boot listeners (in-process, for `inject`). */
export interface TestListeners {
  t: TestContext;
  api: FastifyInstance;
  boot: FastifyInstance;
  /** Closes both listeners, then the context (its database and data directory). */
  close(): Promise<void>;
}

/**
 * A fresh context with the API and boot listeners built on it; enrollment is not rate limited and the
 * registration image is looked at on every request unless `env` and `boot` say otherwise.
 */
export async function startTestListeners(
  db: TestDatabase,
  env: Partial<Record<ConfigKey, string>> = {},
  boot: BootServerOptions = {},
): Promise<TestListeners> {
  const t = await createTestContext(db, { METAL_ENROLL_RATE: '0', ...env });
  const api = await buildApiServer(t.ctx);
  const bootServer = await buildBootServer(t.ctx, { registrationTtlMs: 0, ...boot });
  return {
    t,
    api,
    boot: bootServer,
    async close() {
      await api.close();
      await bootServer.close();
      await t.close();
    },
  };
}
