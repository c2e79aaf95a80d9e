import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, startBuilder } from '../server/roles.ts';
import { createTestContext, type TestContext } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, requestBuild, uniqueConfig, waitForBuild } from '../../test/support/builder.ts';
import type { RunningBuilder } from './builder.ts';
import { pollUntil } from '../../test/support/poll.ts';

const hasNix = nixBuildAvailable();
const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

/** Resolves once `check` holds, looking again every 50 ms; rejects after `timeoutMs`. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await pollUntil(what, check, { timeoutMs, intervalMs: 50 });
}

for (const kind of await testDatabaseKinds()) {
  describe(`builder: held builds, retention and work leftovers on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let builder: RunningBuilder;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.ok, METAL_KEEP_BUILDS: '1' });
      api = await buildApiServer(t.ctx);
      // What a builder killed mid-build left behind: the directory of a build that has since ended.
      mkdirSync(join(t.dataDir, 'builds-work', '999'), { recursive: true });
      writeFileSync(join(t.dataDir, 'builds-work', '999', 'machine.nix'), '{ }');
      builder = await startBuilder(t.ctx, { name: 'keeper' });
    });
    after(async () => {
      await builder.stop();
      await api.close();
      await t.close();
    });

    const buildDir = (id: number) => join(t.ctx.config.imagesDir, 'builds', String(id));
    const link = () => readlinkSync(join(t.ctx.config.imagesDir, 'machines', 'KEEP01'));

    test('leftover work directories of builds that are not running are removed at start', () => {
      assert.equal(existsSync(join(t.dataDir, 'builds-work', '999')), false);
    });

    test('a held build is published under builds/<id> but the machine keeps its image and status', async () => {
      await enrollAndConfigure(api, 'KEEP01', 'keep-01', uniqueConfig());
      const first = await waitForBuild(t.ctx, await requestBuild(api, 'KEEP01'));
      assert.equal(first.status, 'success', first.error ?? '');
      const machine = await t.ctx.machines.get('KEEP01');
      await t.ctx.machines.update('KEEP01', { nixos_config: uniqueConfig() }, OPERATOR);
      const held = await t.ctx.builds.request(machine.id, OPERATOR, { hold: true, rolloutId: 7 });
      assert.equal(held.hold, true);
      assert.equal((await t.ctx.machines.get('KEEP01')).status, 'ready', 'a held build does not make the machine building');
      const done = await waitForBuild(t.ctx, held.id);
      assert.equal(done.status, 'success', done.error ?? '');
      assert.ok(existsSync(join(buildDir(held.id), 'bzImage')));
      assert.equal(link(), `../builds/${first.id}`);
      assert.equal(await t.ctx.storage.machines.imageBuildId(machine.id), first.id);
      assert.equal((await t.ctx.machines.get('KEEP01')).status, 'ready');
      // With METAL_KEEP_BUILDS=1 the held build is the newest; the booted one stays because the machine boots it.
      assert.ok(existsSync(join(buildDir(first.id), 'bzImage')), 'the image the machine boots is never deleted');
    });

    test('after a successful build, images beyond METAL_KEEP_BUILDS that nothing boots are deleted', async () => {
      const before = await t.ctx.storage.machines.imageBuildId((await t.ctx.machines.get('KEEP01')).id);
      await t.ctx.machines.update('KEEP01', { nixos_config: uniqueConfig() }, OPERATOR);
      const next = await waitForBuild(t.ctx, await requestBuild(api, 'KEEP01'));
      assert.equal(next.status, 'success', next.error ?? '');
      assert.equal(link(), `../builds/${next.id}`);
      await eventually('the previous image is swept', () => !existsSync(buildDir(before!)));
      const swept = await t.ctx.storage.builds.findById(before!);
      assert.notEqual(swept!.image_swept_at, null);
      assert.ok(existsSync(join(buildDir(next.id), 'bzImage')));
      assert.equal(existsSync(join(t.dataDir, 'builds-work', String(next.id))), false, 'its own work directory is gone');
    });
  });
}
