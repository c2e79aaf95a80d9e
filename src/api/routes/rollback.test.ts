import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../../test/support/context.ts';
import { buildAndPublish } from '../../../test/support/published-builds.ts';
import { buildApiServer, buildBootServer } from '../../server/roles.ts';

const OPERATOR = { 'x-test-role': 'operator' };

for (const kind of await testDatabaseKinds()) {
  describe(`POST /api/v1/machines/:id/rollback on ${kind.name}`, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let work: string;
    let builds: number[];
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_KEEP_BUILDS: '2' });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
      work = mkdtempSync(join(tmpdir(), 'metal-rollback-'));
      for (const tag of ['RB1', 'RB2', 'RB3']) {
        await t.ctx.machines.enroll(enrollmentPayload(tag), { kind: 'machine', name: tag });
        await t.ctx.machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }' }, { kind: 'user', name: 'test', role: 'operator' });
      }
      builds = [];
      for (let i = 0; i < 3; i++) builds.push(await buildAndPublish(t.ctx, 'RB1', work));
    });
    after(async () => {
      await boot.close();
      await api.close();
      await t.close();
      rmSync(work, { recursive: true, force: true });
    });

    const rollback = (ref: string, body?: object) =>
      api.inject({ method: 'POST', url: `/api/v1/machines/${ref}/rollback`, headers: OPERATOR, ...(body ? { payload: body } : {}) });
    const scriptBuild = async (tag: string) => /metal\.build_id=(\d+)/.exec((await boot.inject({ url: `/nixos/machines/${tag}.ipxe` })).body)?.[1];
    const link = (tag: string) => readlinkSync(join(t.ctx.images.machinesDir, tag));

    test('without a build id, the machine boots the build before its current one: link, row, script and event', async () => {
      assert.equal(await scriptBuild('RB1'), String(builds[2]));
      const r = await rollback('RB1');
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { machine_id: (await t.ctx.machines.get('RB1')).id, service_tag: 'RB1', build_id: builds[1], previous_build_id: builds[2] });
      assert.equal(link('RB1'), join('..', 'builds', String(builds[1])));
      assert.equal(await t.ctx.storage.machines.imageBuildId((await t.ctx.machines.get('RB1')).id), builds[1]);
      assert.equal(await scriptBuild('RB1'), String(builds[1]), 'the boot table follows the change');
      const events = (await t.ctx.storage.events.list({ kind: 'machine.rolled_back' })).items;
      assert.equal(events.length, 1);
      assert.equal(events[0]!.actor, 'user:test-operator');
      assert.equal(events[0]!.message, `RB1 rolled back from build ${builds[2]} to build ${builds[1]}`);
    });

    test('a named build: forward again to the newest, or back two', async () => {
      const r = await rollback('RB1', { build_id: builds[2]! });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(await scriptBuild('RB1'), String(builds[2]));
      const again = await rollback('RB1', { build_id: builds[2]! });
      assert.equal(again.statusCode, 409);
      assert.deepEqual(again.json(), { error: { code: 'conflict', message: `RB1 already boots build ${builds[2]}` } });
    });

    test('409 with a clear message when there is nothing to roll back to; nothing changes', async () => {
      const none = await rollback('RB2');
      assert.equal(none.statusCode, 409);
      assert.deepEqual(none.json(), { error: { code: 'conflict', message: 'RB2 has no image to roll back from' } });
      const only = await buildAndPublish(t.ctx, 'RB3', work);
      const first = await rollback('RB3');
      assert.equal(first.statusCode, 409);
      assert.deepEqual(first.json(), { error: { code: 'conflict', message: `RB3 has no successful build before build ${only} to roll back to` } });
      const foreign = await rollback('RB3', { build_id: builds[0]! });
      assert.equal(foreign.statusCode, 409);
      assert.deepEqual(foreign.json(), { error: { code: 'conflict', message: `build ${builds[0]} is not a build of RB3` } });
      assert.equal(link('RB3'), join('..', 'builds', String(only)));
      assert.equal((await t.ctx.storage.events.list({ kind: 'machine.rolled_back', machineId: (await t.ctx.machines.get('RB3')).id })).total, 0);
    });

    test('retention keeps METAL_KEEP_BUILDS and what a machine boots; a swept build cannot be rolled back to', async () => {
      // RB1 boots builds[2]; with keep 2, builds[0] is the only one past the newest two.
      const outcome = await t.ctx.retention.sweep();
      assert.deepEqual(outcome.swept, [builds[0]]);
      assert.equal(existsSync(join(t.ctx.images.buildsDir, String(builds[0]))), false, 'its files are gone');
      for (const id of builds.slice(1)) assert.ok(existsSync(join(t.ctx.images.buildsDir, String(id), 'bzImage')));
      assert.deepEqual((await t.ctx.retention.sweep()).swept, [], 'a second pass finds nothing');
      const swept = await rollback('RB1', { build_id: builds[0]! });
      assert.equal(swept.statusCode, 409);
      assert.match(swept.json().error.message, new RegExp(`^build ${builds[0]} of RB1 cannot be booted: its image was deleted by retention \\(METAL_KEEP_BUILDS\\) at `));
      assert.equal(await scriptBuild('RB1'), String(builds[2]), 'still on its build');
      // Back to builds[1], then two newer builds: builds[1] is past the newest two but RB1 boots it.
      assert.equal((await rollback('RB1')).statusCode, 200);
      const newer = [await buildAndPublish(t.ctx, 'RB1', work), await buildAndPublish(t.ctx, 'RB1', work)];
      assert.equal((await rollback('RB1', { build_id: builds[1]! })).statusCode, 200);
      const [a, b] = await Promise.all([t.ctx.retention.sweep(), t.ctx.retention.sweep()]);
      assert.deepEqual([...a.swept, ...b.swept], [builds[2]], 'concurrent passes sweep each build once');
      assert.ok(existsSync(join(t.ctx.images.buildsDir, String(builds[1]), 'bzImage')), 'the booted build stays');
      for (const id of newer) assert.ok(existsSync(join(t.ctx.images.buildsDir, String(id), 'bzImage')));
      const listed = (await api.inject({ url: `/api/v1/machines/RB1/builds`, headers: OPERATOR })).json<{ items: Array<{ id: number; image_swept_at: string | null; hold: boolean }> }>();
      assert.deepEqual(listed.items.filter((x) => x.image_swept_at !== null).map((x) => x.id).sort(), [builds[0], builds[2]].sort());
      assert.ok(listed.items.every((x) => x.hold === false));
      // RB1 boots builds[1]; the one before it, builds[0], was swept: the default rollback says so.
      const previousSwept = await rollback('RB1');
      assert.equal(previousSwept.statusCode, 409);
      assert.match(previousSwept.json().error.message, new RegExp(`^build ${builds[0]} of RB1 cannot be booted: its image was deleted by retention`));
      assert.equal(await scriptBuild('RB1'), String(builds[1]));
    });

    test('bad input is refused with 400 and changes nothing', async () => {
      const before = await scriptBuild('RB1');
      for (const body of [{ build_id: 'x' }, { build_id: 0 }, { build_id: 1.5 }, { other: 1 }]) {
        const r = await rollback('RB1', body);
        assert.equal(r.statusCode, 400, JSON.stringify(body));
        assert.equal(r.json().error.code, 'invalid_input');
      }
      const viewer = await api.inject({ method: 'POST', url: '/api/v1/machines/RB1/rollback', headers: { 'x-test-role': 'viewer' } });
      assert.equal(viewer.statusCode, 403);
      assert.equal((await rollback('NOSUCH')).statusCode, 404);
      assert.equal(await scriptBuild('RB1'), before);
    });
  });
}
