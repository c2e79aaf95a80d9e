import { sqlOf } from '../../test/support/context.ts';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

for (const kind of await testDatabaseKinds()) {
  describe(`API tokens on ${kind.name}`, () => {
    let t: AuthTestContext;
    let admin: string;
    let viewer: string;
    before(async () => {
      t = await createAuthTestContext(kind.fresh());
      admin = await t.login('admin', TEST_ADMIN_PASSWORD);
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'vera', role: 'viewer', password: 'vera-password' } });
      viewer = await t.login('vera', 'vera-password');
    });
    after(() => t.close());

    const mint = async (session: string, payload: Record<string, unknown>) => {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(session), payload });
      assert.equal(r.statusCode, 201, r.body);
      return r.json() as { id: number; token: string; role: string; owner: string; name: string };
    };

    test('a token is shown once, acts with its role, and names its owner', async () => {
      const created = await mint(admin, { name: 'ci', role: 'operator' });
      assert.match(created.token, /^mt_[A-Za-z0-9_-]{43}$/);
      assert.equal(created.role, 'operator');
      assert.equal(created.owner, 'admin');
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(created.token) });
      assert.deepEqual({ ...me.json<Record<string, unknown>>(), id: 0 }, { id: 0, username: 'admin', role: 'operator', kind: 'token', token_name: 'ci' });
      const users = await t.app.inject({ url: '/api/v1/users', headers: bearer(created.token) });
      assert.equal(users.statusCode, 403, 'an operator token of an admin is still only an operator');
      const list = await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) });
      assert.equal(list.statusCode, 200);
      assert.ok(!list.body.includes(created.token), 'the list never shows a secret');
      assert.ok(list.json().items.every((i: Record<string, unknown>) => !('token' in i) && !('token_hash' in i)));
    });

    test('last_used_at is recorded when a token is used', async () => {
      const created = await mint(admin, { name: 'usage' });
      const before = (await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) })).json().items.find((i: { id: number }) => i.id === created.id);
      assert.equal(before.last_used_at, null);
      await t.app.inject({ url: '/api/v1/machines', headers: bearer(created.token) });
      const afterUse = (await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) })).json().items.find((i: { id: number }) => i.id === created.id);
      assert.ok(afterUse.last_used_at !== null && Date.parse(afterUse.last_used_at) <= Date.now());
    });

    test('a revoked token is refused at once', async () => {
      const created = await mint(admin, { name: 'revoke-me' });
      assert.equal((await t.app.inject({ url: '/api/v1/machines', headers: bearer(created.token) })).statusCode, 200);
      const revoked = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${created.id}`, headers: bearer(admin) });
      assert.equal(revoked.statusCode, 200);
      assert.ok(revoked.json().revoked_at);
      const r = await t.app.inject({ url: '/api/v1/machines', headers: bearer(created.token) });
      assert.equal(r.statusCode, 401);
      assert.equal(r.json().error.code, 'unauthorized');
    });

    test('an expired token and an expired session are refused', async () => {
      const created = await mint(admin, { name: 'short-lived', expires_at: new Date(Date.now() + 3_600_000).toISOString() });
      assert.equal((await t.app.inject({ url: '/api/v1/machines', headers: bearer(created.token) })).statusCode, 200);
      const past = new Date(Date.now() - 1000).toISOString();
      await sqlOf(t.ctx).updateTable('api_tokens').set({ expires_at: past }).where('id', '=', created.id).execute();
      assert.equal((await t.app.inject({ url: '/api/v1/machines', headers: bearer(created.token) })).statusCode, 401);

      const session = await t.login('vera', 'vera-password');
      await sqlOf(t.ctx).updateTable('sessions').set({ expires_at: past }).where('user_id', '=', (await t.ctx.auth.users.get('vera')).id).execute();
      assert.equal((await t.app.inject({ url: '/api/v1/machines', headers: bearer(session) })).statusCode, 401);
      viewer = await t.login('vera', 'vera-password');
    });

    test('an expiry in the past or a malformed one is refused and nothing is created', async () => {
      const before = (await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) })).json().total;
      for (const expires_at of ['2001-01-01T00:00:00Z', 'tomorrow']) {
        const r = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(admin), payload: { name: 'bad', expires_at } });
        assert.equal(r.statusCode, 400);
        assert.match(r.json().error.message, /expires_at/);
      }
      const badName = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(admin), payload: { name: 'no spaces/slashes' } });
      assert.equal(badName.statusCode, 400);
      assert.equal((await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) })).json().total, before);
    });

    test('a viewer mints only viewer tokens, sees only their own, and cannot revoke others’', async () => {
      const own = await mint(viewer, { name: 'dashboards' });
      assert.equal(own.role, 'viewer');
      const higher = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(viewer), payload: { name: 'x', role: 'operator' } });
      assert.equal(higher.statusCode, 403);
      const list = (await t.app.inject({ url: '/api/v1/tokens', headers: bearer(viewer) })).json();
      assert.deepEqual(list.items.map((i: { owner: string }) => i.owner), ['vera']);
      const adminToken = await mint(admin, { name: 'admins-own' });
      const steal = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${adminToken.id}`, headers: bearer(viewer) });
      assert.equal(steal.statusCode, 404);
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(adminToken.token) })).statusCode, 200);
      const mine = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${own.id}`, headers: bearer(viewer) });
      assert.equal(mine.statusCode, 200);
    });

    test('a token follows its owner: demoted owner, lower role; disabled owner, refused', async () => {
      await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'otto', role: 'operator', password: 'otto-password' } });
      const otto = await t.login('otto', 'otto-password');
      const token = await mint(otto, { name: 'deploy' });
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token.token) })).json().role, 'operator');
      await t.app.inject({ method: 'PUT', url: '/api/v1/users/otto', headers: bearer(admin), payload: { role: 'viewer' } });
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token.token) })).json().role, 'viewer');
      await t.app.inject({ method: 'PUT', url: '/api/v1/users/otto', headers: bearer(admin), payload: { disabled: true } });
      assert.equal((await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token.token) })).statusCode, 401);
    });

    if (kind.name === 'sqlite') {
      test('no token, session or password is stored in clear: the database file does not contain them', async () => {
        const password = 'needle-password-8472';
        await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'needle', role: 'operator', password } });
        const session = await t.login('needle', password);
        const token = (await mint(session, { name: 'needle-token' })).token;
        const path = t.ctx.config.databaseUrl.slice('sqlite:'.length);
        const bytes = Buffer.concat([path, `${path}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
        assert.ok(bytes.includes(Buffer.from('needle-token')), 'the search does see what is stored');
        for (const secret of [password, session, token, session.slice(3), token.slice(3), TEST_ADMIN_PASSWORD]) {
          assert.equal(bytes.includes(Buffer.from(secret)), false, `found ${secret.slice(0, 6)}… in the database file`);
        }
      });
    } else {
      test('no token, session or password is stored in clear: no column of the auth tables holds them', async () => {
        const password = 'needle-password-8472';
        await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username: 'needle', role: 'operator', password } });
        const session = await t.login('needle', password);
        const token = (await mint(session, { name: 'needle-token' })).token;
        const db = sqlOf(t.ctx);
        const dump = JSON.stringify([
          await db.selectFrom('users').selectAll().execute(),
          await db.selectFrom('sessions').selectAll().execute(),
          await db.selectFrom('api_tokens').selectAll().execute(),
          await sqlOf(t.ctx).selectFrom('events').selectAll().execute(),
        ]);
        assert.ok(dump.includes('needle-token'));
        for (const secret of [password, session, token, session.slice(3), token.slice(3)]) assert.equal(dump.includes(secret), false);
      });
    }
  });
}
