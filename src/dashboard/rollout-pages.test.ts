import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { buildAndPublish } from '../../test/support/published-builds.ts';

const operator = { 'x-test-role': 'operator' };
const viewer = { 'x-test-role': 'viewer' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

for (const kind of await testDatabaseKinds()) {
  describe(`dashboard: boot this build and rollouts on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let work: string;
    let builds: number[];
    before(async () => {
      t = await createTestContext(kind.fresh());
      app = await buildApiServer(t.ctx);
      work = mkdtempSync(join(tmpdir(), 'metal-dash-rollouts-'));
      for (const tag of ['DR1', 'DR2']) {
        await t.ctx.machines.enroll(enrollmentPayload(tag), { kind: 'machine', name: tag });
        await t.ctx.machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }', labels: { role: 'dash' } }, OPERATOR);
      }
      builds = [await buildAndPublish(t.ctx, 'DR1', work), await buildAndPublish(t.ctx, 'DR1', work)];
      await buildAndPublish(t.ctx, 'DR2', work);
    });
    after(async () => {
      await app.close();
      await t.close();
      rmSync(work, { recursive: true, force: true });
    });

    const bootForms = (body: string) => [...body.matchAll(/<form method="post" action="\/machines\/DR1\/boot-build" class="inline"><input type="hidden" name="_csrf" value="[^"]*"\/><input type="hidden" name="build_id" value="(\d+)"\/>/g)].map((m) => Number(m[1]));

    test('the builds list offers "Boot this build" for earlier published builds, to operators only', async () => {
      const page = await app.inject({ url: '/machines/DR1', headers: operator });
      assert.equal(page.statusCode, 200);
      assert.deepEqual(bootForms(page.body), [builds[0]], 'not the build it boots now');
      const seen = await app.inject({ url: '/machines/DR1', headers: viewer });
      assert.deepEqual(bootForms(seen.body), []);
      assert.equal(seen.body.includes('Boot this build'), false);
    });

    test('booting an earlier build points the machine at it; a refused one shows why and changes nothing', async () => {
      const r = await app.inject({ method: 'POST', url: '/machines/DR1/boot-build', headers: { ...operator, ...form }, payload: `build_id=${builds[0]}` });
      assert.equal(r.statusCode, 303, r.body);
      assert.equal(r.headers.location, '/machines/DR1?notice=boot-build');
      const machine = await t.ctx.machines.get('DR1');
      assert.equal(await t.ctx.storage.machines.imageBuildId(machine.id), builds[0]);
      const page = await app.inject({ url: '/machines/DR1?notice=boot-build', headers: operator });
      assert.match(page.body, /The machine now points at that build/);
      assert.deepEqual(bootForms(page.body), [builds[1]]);
      const refused = await app.inject({ method: 'POST', url: '/machines/DR1/boot-build', headers: { ...operator, ...form }, payload: `build_id=${builds[0]}` });
      assert.equal(refused.statusCode, 409);
      assert.match(refused.body, new RegExp(`DR1 already boots build ${builds[0]}`));
      const bad = await app.inject({ method: 'POST', url: '/machines/DR1/boot-build', headers: { ...operator, ...form }, payload: 'build_id=%3Cscript%3E' });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.body.includes('<script>'), false);
      const forged = await app.inject({ method: 'POST', url: '/machines/DR1/boot-build', headers: { ...viewer, ...form }, payload: `build_id=${builds[1]}` });
      assert.equal(forged.statusCode, 403);
      assert.equal(await t.ctx.storage.machines.imageBuildId(machine.id), builds[0]);
    });

    test('the rollouts page shows each rollout with its waves; a rollout page its machines and actions', async () => {
      const empty = await app.inject({ url: '/rollouts', headers: viewer });
      assert.equal(empty.statusCode, 200);
      assert.match(empty.body, /No rollouts yet/);
      const rollout = await t.ctx.rollouts.start({ selector: 'role=dash', build: 'always', canary: 1, batch_size: 1, reboot: 'none' }, OPERATOR);
      const list = await app.inject({ url: '/rollouts', headers: viewer });
      assert.match(list.body, new RegExp(`<a href="/rollouts/${rollout.id}">Rollout #${rollout.id}</a>`));
      assert.match(list.body, /hx-get="\/rollouts\?fragment=live"/, 'live while active');
      assert.equal((list.body.match(/class="wave-cell state-building"/g) ?? []).length, 2);
      assert.match(list.body, /wave 1<\/span>/);
      const live = await app.inject({ url: '/rollouts?fragment=live', headers: viewer });
      assert.match(live.body, /^<div id="rollouts-live"/);
      const one = await app.inject({ url: `/rollouts/${rollout.id}`, headers: operator });
      assert.equal(one.statusCode, 200);
      assert.match(one.body, /<a href="\/machines\/DR1">DR1<\/a>/);
      assert.match(one.body, new RegExp(`action="/rollouts/${rollout.id}/pause"`));
      assert.equal((await app.inject({ url: `/rollouts/${rollout.id}`, headers: viewer })).body.includes('method="post" action="/rollouts'), false, 'no actions for viewers');
      const cancel = await app.inject({ method: 'POST', url: `/rollouts/${rollout.id}/cancel`, headers: { ...operator, ...form }, payload: '' });
      assert.equal(cancel.statusCode, 303);
      assert.equal((await t.ctx.rollouts.get(rollout.id)).state, 'cancelled');
      const again = await app.inject({ method: 'POST', url: `/rollouts/${rollout.id}/cancel`, headers: { ...operator, ...form }, payload: '' });
      assert.equal(again.statusCode, 409);
      assert.match(again.body, new RegExp(`rollout ${rollout.id} is already cancelled`));
      // A machine's health check result: its output shown escaped, under what it said.
      const [first] = (await t.ctx.rollouts.get(rollout.id)).machines;
      await t.ctx.storage.rollouts.updateMachine(rollout.id, { ...first!, health: { ok: false, exit_code: 3, output: '<script>window.pwned=1</script>\ninactive' } });
      const checked = await app.inject({ url: `/rollouts/${rollout.id}`, headers: viewer });
      assert.match(checked.body, /<details class="health-result" data-health="failed"><summary>health check failed \(exit 3\)<\/summary><pre>&lt;script&gt;window.pwned=1&lt;\/script&gt;\ninactive<\/pre><\/details>/);
      assert.equal(checked.body.includes('<script>window.pwned'), false);
      assert.equal((await app.inject({ url: '/rollouts/999999', headers: viewer })).statusCode, 404);
      assert.equal((await app.inject({ url: '/rollouts/%3Cx%3E', headers: viewer })).statusCode, 404);
    });
  });
}
