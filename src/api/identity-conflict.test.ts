import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, buildBootServer } from '../server/roles.ts';
import type { AppContext } from '../server/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, sqlOf, type TestContext } from '../../test/support/context.ts';

// Machine identity over HTTP: a MAC or UUID belongs to one machine; an enrollment claiming another's
// is flagged for an operator, never obeyed, and boot requests by MAC/UUID only follow clear owners.

const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;
const operator = { 'x-test-role': 'operator' };
const viewer = { 'x-test-role': 'viewer' };
const MAC_Y = '52:54:00:aa:00:01';
const MAC_VICTIM = '52:54:00:aa:00:02';
const MAC_NEW = '52:54:00:aa:00:03';
const MAC_PLACEHOLDER = '52:54:00:aa:00:04';
const UUID_PLACEHOLDER = '4c4c4544-0000-1000-8000-0000000000aa';

function writeImage(dir: string, init: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'bzImage'), 'kernel');
  writeFileSync(join(dir, 'initrd'), 'initrd');
  writeFileSync(join(dir, 'boot.json'), JSON.stringify({ init, kernel_params: ['console=ttyS0'] }));
}

/** Enrolls a machine, builds it and publishes its image as the builder would. */
async function machineWithImage(ctx: AppContext, tag: string, mac: string): Promise<number> {
  const { machine } = await ctx.machines.enroll(enrollmentPayload(tag, { mac_address: mac }), { kind: 'machine', name: tag });
  await ctx.machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }' }, OPERATOR);
  const build = await ctx.machines.requestBuild(tag, OPERATOR);
  writeImage(ctx.images.buildDir(build.id), `/nix/store/aaaa-${tag.toLowerCase()}/init`);
  const now = new Date().toISOString();
  await ctx.storage.builds.transition(build.id, ['pending'], 'success', { completed_at: now }, now);
  await sqlOf(ctx).updateTable('machines').set({ image_build_id: build.id, status: 'ready' }).where('id', '=', machine.id).execute();
  // Written around the services: say so, as they would.
  ctx.notifier.emit('machine.updated', machine.id);
  return machine.id;
}

for (const kind of await testDatabaseKinds()) {
  describe(`machine identity conflicts on ${kind.name}`, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh());
      writeImage(t.ctx.images.registrationDir, '/nix/store/rrrr-registration/init');
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx);
      // VICTIM01 first, so it has the lower id (the old MAC fallback picked the lowest id).
      await machineWithImage(t.ctx, 'VICTIM01', MAC_VICTIM);
      await machineWithImage(t.ctx, 'YSERVER1', MAC_Y);
    });
    after(async () => {
      await boot.close();
      await api.close();
      await t.close();
    });

    const enroll = (tag: string, mac: string, extra: Record<string, unknown> = {}) =>
      api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag, { mac_address: mac, ...extra }), remoteAddress: '10.9.9.9' });
    const machine = async (ref: string) => (await api.inject({ url: `/api/v1/machines/${ref}`, headers: viewer })).json();
    const script = async (url: string) => {
      const r = await boot.inject({ url });
      assert.equal(r.statusCode, 200, r.body);
      return r.body;
    };
    const decide = (ref: string, action: string, headers: Record<string, string> = operator) =>
      api.inject({ method: 'POST', url: `/api/v1/machines/${ref}/identity`, headers, payload: { action } });

    test('before any attack, Y (placeholder serial, found by MAC) boots its own image', async () => {
      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_Y}`), /metal\.service_tag=YSERVER1 /);
    });

    test('re-enrolling VICTIM01 with Y’s MAC is a 409 conflict that changes nothing but the flag; Y still boots its own image', async () => {
      const before = await machine('VICTIM01');
      const r = await enroll('VICTIM01', MAC_Y, { hardware: { manufacturer: 'Evil', model: 'Hijack' } });
      assert.equal(r.statusCode, 409, r.body);
      assert.equal(r.json().error.code, 'conflict');
      assert.match(r.json().error.message, /VICTIM01: identity conflict: MAC 52:54:00:aa:00:01 \(held by YSERVER1\); nothing was changed/);
      const after = await machine('VICTIM01');
      assert.deepEqual({ ...after, identity_conflict: null, updated_at: before.updated_at }, before, 'hardware, MAC, status, last_seen_at unchanged');
      assert.equal(after.identity_conflict.mac_address, MAC_Y);
      assert.deepEqual(after.identity_conflict.held_by, ['YSERVER1']);
      assert.equal(after.identity_conflict.address, '10.9.9.9');
      assert.ok(after.identity_conflict.claimed_at);
      const events = (await api.inject({ url: '/api/v1/machines/VICTIM01/events', headers: viewer })).json();
      assert.equal(events.items[0].kind, 'machine.identity_conflict');
      assert.equal(events.items[0].data.address, '10.9.9.9');

      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_Y}`), /metal\.service_tag=YSERVER1 /);
      assert.match(await script('/nixos/machines/VICTIM01.ipxe'), /metal\.service_tag=VICTIM01 /, 'VICTIM01 itself still boots by its tag');
    });

    test('a different MAC alone (nobody’s) for a known tag is a conflict too', async () => {
      const r = await enroll('YSERVER1', '52:54:00:aa:00:99');
      assert.equal(r.statusCode, 409);
      assert.match(r.json().error.message, /not this machine's/);
      assert.equal((await machine('YSERVER1')).mac_address, MAC_Y);
      // While a claim is pending, Y is not found by MAC (its own tag still works).
      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_Y}`), /images\/registration\/bzImage/);
      assert.equal((await decide('YSERVER1', 'reject')).statusCode, 200);
      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_Y}`), /metal\.service_tag=YSERVER1 /);
    });

    test('a new tag claiming Y’s MAC is created flagged and owns nothing', async () => {
      const r = await enroll('ROGUE01', MAC_Y);
      assert.equal(r.statusCode, 409);
      assert.match(r.json().error.message, /the machine was created flagged/);
      const rogue = await machine('ROGUE01');
      assert.deepEqual(rogue.identity_conflict.held_by, ['YSERVER1']);
      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_Y}`), /metal\.service_tag=YSERVER1 /);
    });

    test('operators decide: viewers may not, a bad action is a 400, no conflict is a 409; reject clears the flag', async () => {
      assert.equal((await decide('VICTIM01', 'reject', viewer)).statusCode, 403);
      const bad = await decide('VICTIM01', 'maybe');
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().error.code, 'invalid_input');
      const none = await decide('YSERVER1', 'accept');
      assert.equal(none.statusCode, 409);
      assert.match(none.json().error.message, /YSERVER1 has no identity conflict to accept/);
      const r = await decide('VICTIM01', 'reject');
      assert.equal(r.statusCode, 200);
      assert.equal(r.json().identity_conflict, null);
      assert.equal(r.json().mac_address, MAC_VICTIM);
      assert.equal((await decide('VICTIM01', 'reject')).statusCode, 409);
      const events = (await api.inject({ url: '/api/v1/machines/VICTIM01/events', headers: viewer })).json();
      assert.equal(events.items[0].kind, 'machine.identity_rejected');
    });

    test('pre-claiming a new server’s MAC under a fake tag no longer holds the server; accepting gives it the MAC', async () => {
      assert.equal((await enroll('FAKE0001', MAC_NEW)).statusCode, 201);
      // The new server asks with its own serial: before, the MAC found FAKE0001 and held it "no image yet" forever.
      const first = await script(`/nixos/machines/NEWSRV01.ipxe?mac=${MAC_NEW}`);
      assert.match(first, /images\/registration\/bzImage/);
      assert.doesNotMatch(first, /FAKE0001/);
      const r = await enroll('NEWSRV01', MAC_NEW);
      assert.equal(r.statusCode, 409);
      assert.deepEqual((await machine('NEWSRV01')).identity_conflict.held_by, ['FAKE0001']);
      const accepted = await decide('NEWSRV01', 'accept');
      assert.equal(accepted.statusCode, 200);
      assert.equal(accepted.json().identity_conflict, null);
      const released = (await api.inject({ url: '/api/v1/machines/FAKE0001/events', headers: viewer })).json();
      assert.equal(released.items[0].kind, 'machine.identity_released');
      // Found by its MAC now (placeholder serial in the request), and re-enrollment works normally.
      assert.match(await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_NEW}`), /NEWSRV01 is enrolled but has no image yet/);
      assert.equal((await enroll('NEWSRV01', MAC_NEW)).statusCode, 200);
      assert.equal((await enroll('FAKE0001', MAC_NEW)).statusCode, 409, 'the fake tag now claims a MAC it lost');
    });

    test('a placeholder-serial server whose MAC was pre-claimed gets the registration image, not the claimant’s', async () => {
      assert.equal((await enroll('FAKE0002', MAC_PLACEHOLDER)).statusCode, 201);
      const body = await script(`/nixos/machines/Default%20string.ipxe?mac=${MAC_PLACEHOLDER}&uuid=${UUID_PLACEHOLDER}`);
      assert.match(body, /images\/registration\/bzImage/);
      assert.doesNotMatch(body, /FAKE0002/);
    });

    test('MACs are compared case-insensitively and a UUID names one machine', async () => {
      const upper = await enroll('CASE0001', MAC_Y.toUpperCase());
      assert.equal(upper.statusCode, 409);
      const uuid = '4c4c4544-0000-1000-8000-0000000000bb';
      const a = await enroll('UUIDA001', '52:54:00:aa:00:10', { hardware: { uuid: uuid.toUpperCase() } });
      assert.equal(a.statusCode, 201);
      const b = await enroll('UUIDB001', '52:54:00:aa:00:11', { hardware: { uuid } });
      assert.equal(b.statusCode, 409);
      assert.deepEqual((await machine('UUIDB001')).identity_conflict.held_by, ['UUIDA001']);
      const shared = '03000200-0400-0500-0006-000700080009';
      assert.equal((await enroll('PLACEH01', '52:54:00:aa:00:12', { hardware: { uuid: shared } })).statusCode, 201);
      assert.equal((await enroll('PLACEH02', '52:54:00:aa:00:13', { hardware: { uuid: shared } })).statusCode, 201, 'a firmware placeholder UUID is nobody’s');
    });

    test('the dashboard shows the conflict with accept and reject for operators, only the warning for viewers', async () => {
      assert.equal((await enroll('DASH0001', '52:54:00:aa:00:30')).statusCode, 201);
      assert.equal((await enroll('DASH0001', '52:54:00:aa:00:31')).statusCode, 409);
      const page = await api.inject({ url: '/machines/DASH0001', headers: operator });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /Identity conflict/);
      assert.match(page.body, /10\.9\.9\.9/);
      assert.match(page.body, /52:54:00:aa:00:31/);
      assert.match(page.body, /action="\/machines\/DASH0001\/identity"/);
      assert.match(page.body, /value="accept"/);
      const list = await api.inject({ url: '/machines?search=DASH0001', headers: viewer });
      assert.match(list.body, /identity conflict/, 'the machines list marks it too');
      const asViewer = await api.inject({ url: '/machines/DASH0001', headers: viewer });
      assert.match(asViewer.body, /Identity conflict/);
      assert.doesNotMatch(asViewer.body, /value="accept"/);
      const form = { ...operator, 'content-type': 'application/x-www-form-urlencoded' };
      const forbidden = await api.inject({ method: 'POST', url: '/machines/DASH0001/identity', headers: { ...viewer, 'content-type': form['content-type'] }, payload: 'action=accept' });
      assert.equal(forbidden.statusCode, 403);
      const accepted = await api.inject({ method: 'POST', url: '/machines/DASH0001/identity', headers: form, payload: 'action=accept' });
      assert.equal(accepted.statusCode, 303);
      assert.equal(accepted.headers.location, '/machines/DASH0001?notice=identity-accepted');
      const m = await machine('DASH0001');
      assert.equal(m.mac_address, '52:54:00:aa:00:31');
      assert.equal(m.identity_conflict, null);
      const again = await api.inject({ method: 'POST', url: '/machines/DASH0001/identity', headers: form, payload: 'action=reject' });
      assert.equal(again.statusCode, 409);
      assert.match(again.body, /has no identity conflict to reject/);
    });

    test('concurrent enrollments of new tags with one MAC leave exactly one owner', async () => {
      const results = await Promise.all(['RACE0001', 'RACE0002', 'RACE0003', 'RACE0004'].map((tag) => enroll(tag, '52:54:00:aa:00:20')));
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409]);
      const owners = await t.ctx.storage.machines.identityHolders('52:54:00:aa:00:20', null);
      assert.equal(owners.length, 1);
    });
  });
}
