import { buildBootServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { pollUntil } from '../../test/support/poll.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import type { AppContext } from '../server/context.ts';

const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

async function machineWithBuild(ctx: AppContext, tag: string, mac: string): Promise<{ machineId: number; buildId: number; token: string }> {
  const { machine } = await ctx.machines.enroll(enrollmentPayload(tag, { mac_address: mac }), { kind: 'machine', name: tag });
  await ctx.machines.update(tag, { hostname: tag.toLowerCase() }, OPERATOR);
  const build = await ctx.machines.requestBuild(tag, OPERATOR);
  // The token an image script of this build would carry on its kernel line.
  const secret = (await ctx.storage.builds.findRecord(build.id))!.boot_token;
  return { machineId: machine.id, buildId: build.id, token: await ctx.builds.issueBootToken(build.id, secret) };
}

for (const kind of await testDatabaseKinds()) {
  describe(`POST /api/v1/machines/:tag/booted on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let a: { machineId: number; buildId: number; token: string };
    let b: { machineId: number; buildId: number; token: string };
    before(async () => {
      t = await createTestContext(kind.fresh());
      app = await buildBootServer(t.ctx);
      a = await machineWithBuild(t.ctx, 'BOOTA', '52:54:00:00:0a:01');
      b = await machineWithBuild(t.ctx, 'BOOTB', '52:54:00:00:0a:02');
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    const report = (tag: string, body: unknown) => app.inject({ method: 'POST', url: `/api/v1/machines/${tag}/booted`, payload: body as object });
    const bootedEvents = async (machineId: number) =>
      (await t.ctx.storage.events.list({ machineId, kind: 'machine.booted' })).items;

    test('a wrong token is refused with 403 and nothing is recorded', async () => {
      const r = await report('BOOTA', { build_id: a.buildId, token: `${a.token}x` });
      assert.equal(r.statusCode, 403);
      assert.deepEqual(r.json(), {
        error: { code: 'forbidden', message: `boot report refused: build ${a.buildId} of BOOTA does not have this token` },
      });
      const m = await t.ctx.machines.get('BOOTA');
      assert.equal(m.booted_build_id, null);
      assert.equal(m.booted_at, null);
      assert.deepEqual(await bootedEvents(a.machineId), []);
    });

    test("another machine's build, even with its right token, is refused with 403", async () => {
      const r = await report('BOOTA', { build_id: b.buildId, token: b.token });
      assert.equal(r.statusCode, 403);
      assert.equal(r.json().error.code, 'forbidden');
      const missing = await report('BOOTA', { build_id: 999999, token: a.token });
      assert.equal(missing.statusCode, 403);
      assert.equal((await t.ctx.machines.get('BOOTA')).booted_build_id, null);
      assert.equal((await t.ctx.machines.get('BOOTB')).booted_build_id, null);
    });

    test('the right token: 200, the booted build and time are recorded with an event', async () => {
      const r = await report('BOOTA', { build_id: a.buildId, token: a.token });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json();
      assert.deepEqual(Object.keys(body).sort(), ['booted_at', 'build_id', 'machine_id']);
      assert.equal(body.machine_id, a.machineId);
      assert.equal(body.build_id, a.buildId);
      const m = await t.ctx.machines.get('BOOTA');
      assert.equal(m.booted_build_id, a.buildId);
      assert.equal(m.booted_at, body.booted_at);
      const events = await bootedEvents(a.machineId);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.actor, 'machine:BOOTA');
      assert.equal(events[0]!.build_id, a.buildId);
    });

    test('reboot requests: only the running boot’s token asks; 200 once its machine points elsewhere with a request', async () => {
      const ask = (tag: string, buildId: number, token: string) =>
        app.inject({ url: `/api/v1/machines/${tag}/reboot-request?build_id=${buildId}&token=${encodeURIComponent(token)}` });
      // BOOTA booted a.buildId with a.token (previous test); its image row is the build itself once published.
      await t.ctx.storage.machines.update(a.machineId, { image_build_id: a.buildId }, new Date().toISOString());
      assert.equal((await ask('BOOTA', a.buildId, a.token)).statusCode, 204, 'nothing to do');
      const secret = (await t.ctx.storage.builds.findRecord(a.buildId))!.boot_token;
      const unused = await t.ctx.builds.issueBootToken(a.buildId, secret);
      const stale = await ask('BOOTA', a.buildId, unused);
      assert.equal(stale.statusCode, 403, 'a genuine token that is not the running boot’s');
      assert.deepEqual(stale.json(), { error: { code: 'forbidden', message: `reboot request refused: build ${a.buildId} of BOOTA is not running with this token` } });
      assert.equal((await ask('BOOTA', b.buildId, b.token)).statusCode, 403, 'another machine’s build');
      assert.equal((await ask('BOOTA', a.buildId, `${a.token}x`)).statusCode, 403);
      assert.equal((await ask('NOSUCH', a.buildId, a.token)).statusCode, 404);
      assert.equal((await ask('BOOTA', 0, a.token)).statusCode, 400);
      // Pointed at no image with a request (as a rollout with reboot "agent" does): reboot.
      const now = new Date().toISOString();
      await t.ctx.storage.machines.update(a.machineId, { image_build_id: null, reboot_requested_at: now }, now);
      // Once the boot table has the change (through the change feed: on PostgreSQL a notification that
      // arrives when it arrives, within about a second).
      const go = await pollUntil('the reboot request answered 200', async () => {
        const r = await ask('BOOTA', a.buildId, a.token);
        return r.statusCode === 200 ? r : undefined;
      }, { timeoutMs: 10_000 });
      assert.deepEqual(go.json(), { reboot: true });
      await t.ctx.storage.machines.update(a.machineId, { image_build_id: a.buildId }, now);
      assert.equal((await ask('BOOTA', a.buildId, a.token)).statusCode, 204, 'it already runs what it points at');
      // Booting the image it points at clears the request.
      const fresh = await t.ctx.builds.issueBootToken(a.buildId, secret);
      assert.equal((await report('BOOTA', { build_id: a.buildId, token: fresh })).statusCode, 200);
      assert.equal(await t.ctx.storage.machines.rebootRequestedAt(a.machineId), null);
    });

    test('a reboot request is answered only once the boot server would serve the new image', async () => {
      const c = await machineWithBuild(t.ctx, 'BOOTC', '52:54:00:00:0a:03');
      const now = () => new Date().toISOString();
      await t.ctx.storage.machines.update(c.machineId, { image_build_id: c.buildId }, now());
      assert.equal((await report('BOOTC', { build_id: c.buildId, token: c.token })).statusCode, 200);
      // Without a change feed, machine lookups are remembered (here for an hour) until this process
      // signals a change: the window between a write and its signal, held open.
      const held = await buildBootServer({ ...t.ctx, bootFeed: undefined } as unknown as AppContext, { machineTtlMs: 3_600_000 });
      try {
        const ask = () => held.inject({ url: `/api/v1/machines/BOOTC/reboot-request?build_id=${c.buildId}&token=${encodeURIComponent(c.token)}` });
        // The machine asked for its script when it booted: the lookup is remembered.
        assert.equal((await held.inject({ url: '/nixos/machines/BOOTC.ipxe' })).statusCode, 200);
        assert.equal((await ask()).statusCode, 204, 'nothing to do');
        // Pointed elsewhere with a request, as a rollout's wave does, not yet signalled.
        await t.ctx.storage.machines.update(c.machineId, { image_build_id: null, reboot_requested_at: now() }, now());
        assert.equal((await ask()).statusCode, 204, 'the boot server still serves the running build: a reboot now would boot it again');
        t.ctx.notifier.emit('machine.updated', c.machineId);
        const go = await ask();
        assert.equal(go.statusCode, 200, go.body);
        assert.deepEqual(go.json(), { reboot: true });
      } finally {
        await held.close();
      }
    });

    test('unknown tag: 404; invalid tag or body: 400; nothing recorded', async () => {
      const unknown = await report('NOSUCH', { build_id: a.buildId, token: a.token });
      assert.equal(unknown.statusCode, 404);
      assert.deepEqual(unknown.json(), { error: { code: 'not_found', message: 'machine NOSUCH not found' } });
      const badTag = await report('bad%20tag', { build_id: a.buildId, token: a.token });
      assert.equal(badTag.statusCode, 400);
      assert.equal(badTag.json().error.code, 'invalid_input');
      for (const body of [{ build_id: 'x', token: a.token }, { build_id: b.buildId }, { token: b.token }, { build_id: 0, token: b.token }]) {
        const r = await report('BOOTB', body);
        assert.equal(r.statusCode, 400, JSON.stringify(body));
        assert.equal(r.json().error.code, 'invalid_input');
      }
      assert.equal((await t.ctx.machines.get('BOOTB')).booted_build_id, null);
      assert.deepEqual(await bootedEvents(b.machineId), []);
    });
  });
}
