import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { startServer } from '../../src/server/serve.ts';
import { freshPostgres, isPostgresAvailable, TEST_POSTGRES_URL } from '../support/databases.ts';
import { pollUntil } from '../support/poll.ts';

/**
 * `/readyz` of a process with several roles says ready only once every role is up. The boot
 * listener starts after the API's: its decision table is loaded first. Holding a lock on the
 * machines table (PostgreSQL; SQLite's reads would block the whole process) keeps the boot role
 * starting for as long as the test likes, so the window in which the API answers and the boot
 * listener does not yet is open on purpose rather than by chance.
 */

/** A port free at the time of asking, so the API's address is known before `startServer` returns. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const postgres = await isPostgresAvailable();

describe('readiness of a process with the api and boot roles', { skip: !postgres }, () => {
  test('/readyz waits for the boot listener, then says ready on both listeners', { timeout: 60_000 }, async () => {
    const database = freshPostgres();
    const dataDir = mkdtempSync(join(tmpdir(), 'metal-ready-'));
    const schema = new URL(database.url).searchParams.get('schema')!;
    const apiPort = await freePort();
    const config = loadConfig(
      {
        METAL_DATA_DIR: dataDir,
        METAL_DATABASE_URL: database.url,
        METAL_LISTEN: `127.0.0.1:${apiPort}`,
        METAL_BOOT_LISTEN: '127.0.0.1:0',
        METAL_BOOT_URL: 'http://127.0.0.1:9',
        METAL_ADMIN_PASSWORD: 'correct horse battery staple',
        METAL_LOG_LEVEL: 'silent',
      },
      {},
    );
    const logger = createLogger('silent');
    const locker = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    let starting: ReturnType<typeof startServer> | undefined;
    try {
      // A first start migrates the schema, creates the admin and records the nixpkgs pin, so the
      // second start's API role reads no machine before it listens.
      await (await startServer(config, logger, ['api'])).stop();
      await locker.connect();
      await locker.query('begin');
      await locker.query(`lock table "${schema}".machines in access exclusive mode`);

      starting = startServer(config, logger, ['api', 'boot']);
      starting.catch(() => undefined);
      const api = `http://127.0.0.1:${apiPort}`;
      const get = (path: string) => fetch(`${api}${path}`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      const early = await pollUntil(
        'the API answers /readyz while the boot role starts',
        async () => {
          const r = await get('/readyz');
          return r && { status: r.status, body: (await r.json()) as { status: string; reason?: string } };
        },
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      assert.deepEqual(early, { status: 503, body: { status: 'unavailable', reason: 'starting: waiting for the boot listener' } });
      assert.equal((await get('/healthz'))?.status, 200, 'alive while not ready');

      await locker.query('commit');
      const server = await starting;
      starting = undefined;
      try {
        assert.equal((await fetch(`${server.addresses.api}/readyz`)).status, 200);
        assert.equal((await fetch(`${server.addresses.boot}/readyz`)).status, 200);
      } finally {
        await server.stop();
      }
      assert.equal(server.ctx.readiness.reason, 'stopping');
    } finally {
      await locker.end().catch(() => undefined);
      if (starting) await starting.then((s) => s.stop()).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
      await database.cleanup();
    }
  });
});
