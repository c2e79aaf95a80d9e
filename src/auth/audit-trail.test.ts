import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { enrollmentPayload } from '../../test/support/context.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
type Event = { kind: string; actor: string; machine_id: number | null; message: string; data: Record<string, unknown> | null; created_at: string };

for (const kind of await testDatabaseKinds()) {
  describe(`the audit trail on ${kind.name}`, () => {
    let t: AuthTestContext;
    let admin: string;
    let token: { id: number; token: string };
    let machineId: number;
    let startedAt: string;

    const events = async (query = '') => {
      const r = await t.app.inject({ url: `/api/v1/events${query}`, headers: bearer(admin) });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as { items: Event[]; total: number };
    };
    const latest = async (eventKind: string) => (await events(`?kind=${eventKind}&limit=1`)).items[0];

    before(async () => {
      startedAt = new Date(Date.now() - 1000).toISOString();
      t = await createAuthTestContext(kind.fresh());
      admin = await t.login('admin', TEST_ADMIN_PASSWORD);
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'alice', role: 'operator', password: 'alice-password' } });
      const alice = await t.login('alice', 'alice-password');
      token = (await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(alice), payload: { name: 'ci' } })).json();
      machineId = (await t.app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('AUDIT1') })).json().id;
      await t.app.inject({ method: 'PUT', url: '/api/v1/machines/AUDIT1', headers: bearer(token.token), payload: { hostname: 'audit-01', nixos_config: '{ ... }: { }' } });
      await t.app.inject({ method: 'POST', url: '/api/v1/machines/AUDIT1/build', headers: bearer(alice), payload: {} });
      await t.app.inject({ method: 'PUT', url: '/api/v1/users/alice', headers: bearer(admin), payload: { role: 'viewer' } });
      await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${token.id}`, headers: bearer(admin) });
      await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'alice', password: 'wrong-password' }, remoteAddress: '10.7.0.1' });
      await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(alice) });
    });
    after(() => t.close());

    test('each change names who made it', async () => {
      const expected: Array<[string, string, RegExp]> = [
        ['user.created', 'user:admin', /user alice created with role operator/],
        ['auth.login', 'user:alice', /alice signed in/],
        ['token.created', 'user:alice', /API token alice\/ci created with role operator/],
        ['machine.enrolled', 'machine:AUDIT1', /./],
        ['machine.updated', 'token:alice/ci', /./],
        ['build.requested', 'user:alice', /./],
        ['user.updated', 'user:admin', /role operator -> viewer/],
        ['token.revoked', 'user:admin', /alice\/ci revoked/],
        ['auth.login_failed', 'anonymous:anonymous', /failed sign-in as "alice" from 10\.7\.0\.1/],
        ['auth.logout', 'user:alice', /alice signed out/],
      ];
      for (const [eventKind, actor, message] of expected) {
        const e = await latest(eventKind);
        assert.ok(e, `an event ${eventKind}`);
        assert.equal(e.actor, actor, eventKind);
        assert.match(e.message, message, eventKind);
      }
      assert.equal((await latest('machine.updated'))!.machine_id, machineId);
    });

    test('events never carry passwords or tokens', async () => {
      const all = JSON.stringify((await events('?limit=500')).items);
      for (const secret of [TEST_ADMIN_PASSWORD, 'alice-password', 'wrong-password', token.token]) assert.equal(all.includes(secret), false);
    });

    test('filters: actor, machine (id or tag), kind, since/until, paging', async () => {
      const byToken = await events('?actor=token:alice/ci');
      assert.deepEqual(byToken.items.map((e) => e.kind), ['machine.updated']);
      const byAlice = await events('?actor=user:alice');
      assert.ok(byAlice.items.length >= 3 && byAlice.items.every((e) => e.actor === 'user:alice'));
      for (const ref of [String(machineId), 'AUDIT1']) {
        const forMachine = await events(`?machine=${ref}`);
        assert.ok(forMachine.total >= 3);
        assert.ok(forMachine.items.every((e) => e.machine_id === machineId));
      }
      assert.equal((await events('?machine=999999')).total, 0);
      const unknown = await t.app.inject({ url: '/api/v1/events?machine=NOPE', headers: bearer(admin) });
      assert.equal(unknown.statusCode, 404);
      assert.deepEqual(unknown.json(), { error: { code: 'not_found', message: 'machine NOPE not found' } });
    });

    test('time window and paging', async () => {
      const all = await events('?limit=500');
      assert.equal((await events(`?since=${encodeURIComponent(startedAt)}&limit=500`)).total, all.total);
      assert.equal((await events(`?until=${encodeURIComponent(startedAt)}`)).total, 0);
      const page = await events('?limit=2&offset=1');
      assert.equal(page.items.length, 2);
      assert.equal(page.total, all.total);
      assert.deepEqual(page.items, all.items.slice(1, 3));
    });

    test('bad filters are refused with 400; only admins read the trail', async () => {
      const bad = await t.app.inject({ url: '/api/v1/events?since=yesterday', headers: bearer(admin) });
      assert.equal(bad.statusCode, 400);
      assert.deepEqual(bad.json(), { error: { code: 'invalid_input', message: 'since must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z' } });
      assert.equal((await t.app.inject({ url: '/api/v1/events?limit=0', headers: bearer(admin) })).statusCode, 400);
      const operator = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(admin), payload: { name: 'op', role: 'operator' } });
      const r = await t.app.inject({ url: '/api/v1/events', headers: bearer(operator.json().token) });
      assert.equal(r.statusCode, 403);
    });
  });
}
