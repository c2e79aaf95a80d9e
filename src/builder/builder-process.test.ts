import { buildApiServer, startBuilder } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createContext, type AppContext } from '../server/context.ts';
import { createLogger } from '../core/logger.ts';
import { createTestContext, type TestContext, sqlOf } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, processesMentioning, requestBuild, uniqueConfig, waitForBuild } from '../../test/support/builder.ts';
import { pollUntil } from '../../test/support/poll.ts';

const METAL = fileURLToPath(new URL('../../bin/metal.js', import.meta.url));
const hasNix = nixBuildAvailable();

/** Waits, up to `timeoutMs`, until `check` holds; for process table changes, which emit no event. */
async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(what, check, { timeoutMs, intervalMs: 100 });
}

function spawnBuilder(t: TestContext, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [METAL, 'builder'], {
    env: {
      ...process.env,
      METAL_DATA_DIR: t.dataDir,
      METAL_DATABASE_URL: t.config.databaseUrl,
      METAL_BOOT_URL: t.config.bootUrl,
      METAL_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (c: Buffer) => process.stderr.write(`[child builder] ${c.toString()}`));
  return child;
}

for (const kind of await testDatabaseKinds()) {
  describe(`builder processes on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.ok });
      api = await buildApiServer(t.ctx);
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    test('a builder killed with SIGKILL mid-build: its nix-build stops, the build is retried by another builder and succeeds', async () => {
      await enrollAndConfigure(api, 'KILL01', 'kill-01', uniqueConfig());
      const id = await requestBuild(api, 'KILL01');
      const child = spawnBuilder(t, { METAL_NIX_ENTRY: FIXTURES.slow, METAL_BUILD_LEASE_SECONDS: '1' });
      const exited = once(child, 'exit');
      try {
        await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'), 30_000);
      } finally {
        child.kill('SIGKILL');
      }
      await exited;
      const workDir = join(t.ctx.config.dataDir, 'builds-work', String(id));
      await eventually(() => processesMentioning(workDir).length === 0, 'the killed builder\'s nix-build to stop');
      assert.equal((await t.ctx.builds.get(id)).status, 'building', 'the dead builder still holds the lease');

      const builder = await startBuilder(t.ctx, { name: 'survivor', leaseMs: 1000 });
      try {
        const build = await waitForBuild(t.ctx, id, undefined, 30_000);
        assert.equal(build.status, 'success', build.error ?? '');
        assert.equal(build.attempts, 2);
        assert.match(build.log_output, /builder \S+ was lost \(its lease expired at [^)]+\); the build is tried again/);
        assert.match(build.log_output, /builder survivor: building kill-01/);
        const events = (await t.ctx.storage.events.list({ buildId: id })).items.map((e) => `${e.kind} ${e.actor}`);
        assert.ok(events.includes('build.retried builder:survivor'), events.join(', '));
        assert.ok(events.includes('build.succeeded builder:survivor'), events.join(', '));
      } finally {
        await builder.stop();
      }
    });

    test('`metal builder` with the stand-in entry picks up a build and stops cleanly on SIGTERM', async () => {
      const child = spawnBuilder(t, { METAL_NIX_ENTRY: FIXTURES.ok });
      const exited = once(child, 'exit');
      try {
        await enrollAndConfigure(api, 'PROC01', 'proc-01', uniqueConfig());
        const id = await requestBuild(api, 'PROC01');
        const build = await waitForBuild(t.ctx, id, undefined, 30_000);
        assert.equal(build.status, 'success', build.error ?? '');
        assert.match(build.log_output, /stand-in: building image for proc-01/);
      } finally {
        child.kill('SIGTERM');
      }
      const [code] = await exited;
      assert.equal(code, 0);
    });

    test('a build cancelled through another process stops there too (NOTIFY on PostgreSQL, lease renewal on SQLite)', async () => {
      const other: AppContext = await createContext(t.config, createLogger('silent'));
      // On PostgreSQL the lease is long, so only the notification can stop the build in time.
      const builder = await startBuilder(other, { name: 'remote', nixEntry: FIXTURES.slow, leaseMs: kind.name === 'postgres' ? 60_000 : 1500, logIntervalMs: 50 });
      try {
        await enrollAndConfigure(api, 'CANCEL01', 'cancel-01', uniqueConfig());
        const id = await requestBuild(api, 'CANCEL01');
        await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'));
        const workDir = join(t.ctx.config.dataDir, 'builds-work', String(id));
        assert.ok(processesMentioning(workDir).length > 0);
        const r = await api.inject({ method: 'POST', url: `/api/v1/builds/${id}/cancel`, headers: { 'x-test-role': 'operator' } });
        assert.equal(r.statusCode, 200);
        await eventually(() => processesMentioning(workDir).length === 0, 'the other process to stop nix-build');
        const build = await t.ctx.builds.get(id);
        assert.equal(build.status, 'cancelled');
        assert.equal(build.artifact_url, null);
      } finally {
        await builder.stop();
        await other.close();
      }
    });

    if (kind.name === 'postgres') {
      test('two builders and 20 pending builds: each built exactly once', async () => {
        const other: AppContext = await createContext(t.config, createLogger('silent'));
        const tags = Array.from({ length: 20 }, (_, i) => `PAIR${String(i).padStart(2, '0')}`);
        for (const tag of tags) await enrollAndConfigure(api, tag, tag.toLowerCase(), uniqueConfig());
        const a = await startBuilder(t.ctx, { name: 'alpha' });
        const b = await startBuilder(other, { name: 'beta' });
        try {
          const ids: number[] = [];
          for (const tag of tags) ids.push(await requestBuild(api, tag));
          for (const id of ids) {
            const build = await waitForBuild(t.ctx, id, undefined, 60_000);
            assert.equal(build.status, 'success', `build ${id}: ${build.error}`);
            assert.equal(build.attempts, 1);
          }
          const events = await sqlOf(t.ctx)
            .selectFrom('events')
            .select(['build_id', 'kind', 'actor_name'])
            .where('build_id', 'in', ids)
            .where('kind', 'in', ['build.started', 'build.succeeded'])
            .execute();
          for (const id of ids) {
            const mine = events.filter((e) => Number(e.build_id) === id);
            assert.equal(mine.filter((e) => e.kind === 'build.started').length, 1, `build ${id} started once`);
            assert.equal(mine.filter((e) => e.kind === 'build.succeeded').length, 1, `build ${id} succeeded once`);
          }
          const byBuilder = new Set(events.map((e) => e.actor_name));
          console.log(`builds per builder: ${[...byBuilder].map((n) => `${n}=${events.filter((e) => e.actor_name === n && e.kind === 'build.started').length}`).join(', ')}`);
        } finally {
          await a.stop();
          await b.stop();
          await other.close();
        }
      });
    }
  });
}
