import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabaseKinds } from '../testing/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from './auth-test-context.ts';

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

    test('login returns an ms_ token and its expiry; me names the user', async () => {
      assert.match(admin, /^ms_[A-Za-z0-9_-]{43}$/);
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(admin) });
      assert.equal(me.statusCode, 200);
      assert.deepEqual({ ...me.json<Record<string, unknown>>(), id: 0 }, { id: 0, username: 'admin', role: 'admin', kind: 'user' });
    });

    test('a wrong password and an unknown user get the same 401 answer', async () => {
      const wrong = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: 'nope-nope' }, remoteAddress: '10.9.9.1' });
      const unknown = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'ghost', password: 'nope-nope' }, remoteAddress: '10.9.9.1' });
      assert.equal(wrong.statusCode, 401);
      assert.deepEqual(wrong.json(), { error: { code: 'unauthorized', message: 'wrong username or password' } });
      assert.equal(unknown.statusCode, 401);
      assert.deepEqual(unknown.json(), wrong.json());
    });

    test('anonymous requests to a protected route get 401', async () => {
      const r = await t.app.inject({ url: '/api/v1/machines' });
      assert.equal(r.statusCode, 401);
      assert.equal(r.json().error.code, 'unauthorized');
      const garbage = await t.app.inject({ url: '/api/v1/machines', headers: bearer('ms_not-a-real-token') });
      assert.equal(garbage.statusCode, 401);
    });

    test('logout ends the session', async () => {
      const token = await t.login('admin', TEST_ADMIN_PASSWORD);
      const out = await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(token) });
      assert.equal(out.statusCode, 204);
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token) });
      assert.equal(me.statusCode, 401);
    });
  });
}
