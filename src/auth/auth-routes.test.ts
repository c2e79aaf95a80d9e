import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';
import { CONTENT_SECURITY_POLICY } from './security-headers.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

for (const kind of await testDatabaseKinds()) {
  describe(`sign-in, sessions and users on ${kind.name}`, () => {
    let t: AuthTestContext;
    let admin: string;
    before(async () => {
      t = await createAuthTestContext(kind.fresh());
      admin = await t.login('admin', TEST_ADMIN_PASSWORD);
    });
    after(() => t.close());

    const loginAs = (username: string, password: string, remoteAddress = '10.1.0.1') =>
      t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress });

    test('login returns an ms_ token and its expiry; me names the user', async () => {
      assert.match(admin, /^ms_[A-Za-z0-9_-]{43}$/);
      const r = await loginAs('admin', TEST_ADMIN_PASSWORD);
      assert.equal(r.headers['cache-control'], 'no-store');
      const hours = (Date.parse(r.json().expires_at) - Date.now()) / 3_600_000;
      assert.ok(hours > 11.9 && hours <= 12, `expires in ${hours} h`);
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(admin) });
      assert.equal(me.statusCode, 200);
      assert.deepEqual({ ...me.json<Record<string, unknown>>(), id: 0 }, { id: 0, username: 'admin', role: 'admin', kind: 'user' });
    });

    test('a wrong password and an unknown user get the same 401 answer', async () => {
      const wrong = await loginAs('admin', 'nope-nope', '10.9.9.1');
      const unknown = await loginAs('ghost', 'nope-nope', '10.9.9.1');
      assert.equal(wrong.statusCode, 401);
      assert.deepEqual(wrong.json(), { error: { code: 'unauthorized', message: 'wrong username or password' } });
      assert.equal(unknown.statusCode, 401);
      assert.deepEqual(unknown.json(), wrong.json());
    });

    test('anonymous and garbage credentials get 401 on a protected route', async () => {
      for (const headers of [{}, bearer('ms_not-a-real-token'), bearer(`ms_${'A'.repeat(43)}`), { authorization: 'Basic YWRtaW46YWRtaW4=' }]) {
        const r = await t.app.inject({ url: '/api/v1/machines', headers });
        assert.equal(r.statusCode, 401);
        assert.equal(r.json().error.code, 'unauthorized');
      }
    });

    test('brute force on one user from one address: the 6th try from there gets 429 with Retry-After; other addresses still sign in', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'target', role: 'viewer', password: 'target-password' } });
      for (let i = 0; i < 5; i++) {
        const r = await loginAs('target', `guess-${i}-xx`, '10.2.0.1');
        assert.equal(r.statusCode, 401, `attempt ${i + 1}`);
      }
      const limited = await loginAs('target', 'target-password', '10.2.0.1');
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json().error.code, 'rate_limited');
      const retryAfter = Number(limited.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 900, `Retry-After ${limited.headers['retry-after']}`);
      // The account is not locked: its owner signs in from another address.
      assert.equal((await loginAs('target', 'target-password', '10.2.0.2')).statusCode, 200);
      assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '10.2.0.100')).statusCode, 200);
    });

    test('brute force from one address across many usernames: 429 from that address only', async () => {
      let status = 0;
      let tries = 0;
      while (tries < 30 && status !== 429) status = (await loginAs(`nobody${tries++}`, 'wrong-password', '10.3.0.1')).statusCode;
      assert.equal(status, 429);
      assert.equal(tries, 21, 'twenty failures are allowed per address');
      assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '10.3.0.1')).statusCode, 429);
      assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '10.3.0.2')).statusCode, 200);
    });

    test('logout ends the session', async () => {
      const token = await t.login('admin', TEST_ADMIN_PASSWORD);
      const out = await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(token) });
      assert.equal(out.statusCode, 204);
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token) });
      assert.equal(me.statusCode, 401);
    });

    test('users: admin creates, lists, changes the role of, and removes a user; hashes never appear', async () => {
      const created = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'carol', role: 'viewer', password: 'carol-password' } });
      assert.equal(created.statusCode, 201);
      assert.deepEqual(Object.keys(created.json()).sort(), ['created_at', 'disabled', 'id', 'role', 'updated_at', 'username']);
      const dup = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'carol', role: 'viewer', password: 'carol-password' } });
      assert.equal(dup.statusCode, 409);
      assert.deepEqual(dup.json(), { error: { code: 'conflict', message: 'user carol already exists' } });
      const list = await t.app.inject({ url: '/api/v1/users', headers: bearer(admin) });
      assert.ok(list.json().items.some((u: { username: string }) => u.username === 'carol'));
      assert.doesNotMatch(list.body, /argon2|password/);
      const promoted = await t.app.inject({ method: 'PUT', url: '/api/v1/users/carol', headers: bearer(admin), payload: { role: 'operator' } });
      assert.equal(promoted.statusCode, 200);
      assert.equal(promoted.json().role, 'operator');
      const removed = await t.app.inject({ method: 'DELETE', url: `/api/v1/users/${created.json().id}`, headers: bearer(admin) });
      assert.equal(removed.statusCode, 204);
      assert.equal((await t.app.inject({ url: '/api/v1/users/carol', headers: bearer(admin) })).statusCode, 404);
    });

    test('bad user input is refused and changes nothing', async () => {
      const cases = [
        { payload: { username: 'bad name', role: 'viewer', password: 'long-enough' }, message: /username must be/ },
        { payload: { username: 'short', role: 'viewer', password: 'short' }, message: /at least 8 characters/ },
        { payload: { username: 'king', role: 'king', password: 'long-enough' }, message: /role/ },
        { payload: { username: 'extra', role: 'viewer', password: 'long-enough', admin: true }, message: /body has a field it does not take: "admin"/ },
      ];
      const before = (await t.app.inject({ url: '/api/v1/users', headers: bearer(admin) })).json().total;
      for (const c of cases) {
        const r = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: c.payload });
        assert.equal(r.statusCode, 400, JSON.stringify(c.payload));
        assert.equal(r.json().error.code, 'invalid_input');
        assert.match(r.json().error.message, c.message);
      }
      assert.equal((await t.app.inject({ url: '/api/v1/users', headers: bearer(admin) })).json().total, before);
    });

    test('the last admin cannot be demoted, disabled or removed, and nobody removes themselves', async () => {
      const demote = await t.app.inject({ method: 'PUT', url: '/api/v1/users/admin', headers: bearer(admin), payload: { role: 'viewer' } });
      assert.equal(demote.statusCode, 409);
      assert.match(demote.json().error.message, /last admin/);
      const disable = await t.app.inject({ method: 'PUT', url: '/api/v1/users/admin', headers: bearer(admin), payload: { disabled: true } });
      assert.equal(disable.statusCode, 409);
      const self = await t.app.inject({ method: 'DELETE', url: '/api/v1/users/admin', headers: bearer(admin) });
      assert.equal(self.statusCode, 409);
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(admin) })).json().role, 'admin');
    });

    test('an operator cannot manage users or mint an admin token', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'oscar', role: 'operator', password: 'oscar-password' } });
      const op = await t.login('oscar', 'oscar-password');
      for (const req of [
        { method: 'GET' as const, url: '/api/v1/users' },
        { method: 'POST' as const, url: '/api/v1/users', payload: { username: 'mallory', role: 'admin', password: 'mallory-pass' } },
        { method: 'PUT' as const, url: '/api/v1/users/oscar', payload: { role: 'admin' } },
        { method: 'DELETE' as const, url: '/api/v1/users/admin' },
        { method: 'GET' as const, url: '/api/v1/events' },
      ]) {
        const r = await t.app.inject({ ...req, headers: bearer(op) });
        assert.equal(r.statusCode, 403, `${req.method} ${req.url}`);
        assert.equal(r.json().error.code, 'forbidden');
      }
      const adminToken = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(op), payload: { name: 'escalate', role: 'admin' } });
      assert.equal(adminToken.statusCode, 403);
      assert.deepEqual(adminToken.json(), { error: { code: 'forbidden', message: 'a token cannot have a higher role than its creator (operator)' } });
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(op) })).json().role, 'operator');
      assert.equal((await t.app.inject({ url: '/api/v1/users/mallory', headers: bearer(admin) })).statusCode, 404);
    });

    test('changing one’s own password needs the current one and ends the other sessions', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'dave', role: 'viewer', password: 'dave-password-1' } });
      const first = await t.login('dave', 'dave-password-1');
      const second = await t.login('dave', 'dave-password-1');
      const wrong = await t.app.inject({ method: 'PUT', url: '/api/v1/auth/password', headers: bearer(first), payload: { current_password: 'nope-nope', new_password: 'dave-password-2' } });
      assert.equal(wrong.statusCode, 403);
      const ok = await t.app.inject({ method: 'PUT', url: '/api/v1/auth/password', headers: bearer(first), payload: { current_password: 'dave-password-1', new_password: 'dave-password-2' } });
      assert.equal(ok.statusCode, 204);
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(first) })).statusCode, 200, 'the session that changed it stays');
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(second) })).statusCode, 401, 'other sessions end');
      assert.equal((await loginAs('dave', 'dave-password-1', '10.4.0.1')).statusCode, 401);
      assert.equal((await loginAs('dave', 'dave-password-2', '10.4.0.1')).statusCode, 200);
    });

    test('a disabled user can neither sign in nor use an existing session', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'erin', role: 'viewer', password: 'erin-password' } });
      const session = await t.login('erin', 'erin-password');
      const off = await t.app.inject({ method: 'PUT', url: '/api/v1/users/erin', headers: bearer(admin), payload: { disabled: true } });
      assert.equal(off.json().disabled, true);
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(session) })).statusCode, 401);
      const r = await loginAs('erin', 'erin-password', '10.5.0.1');
      assert.equal(r.statusCode, 401);
      assert.equal(r.json().error.message, 'wrong username or password');
    });

    test('every API response carries the browser-hardening headers', async () => {
      for (const url of ['/healthz', '/api/v1/machines', '/api/v1/nope']) {
        const r = await t.app.inject({ url });
        assert.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY, url);
        assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
        assert.doesNotMatch(String(r.headers['content-security-policy']), /unsafe-inline/);
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
        assert.equal(r.headers['referrer-policy'], 'no-referrer');
        assert.equal(r.headers['x-frame-options'], 'DENY');
      }
    });
  });
}
