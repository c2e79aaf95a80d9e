import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

// Issue 13, item 9: API tokens used to survive a password change and to work again after an account
// was re-enabled. A password change now revokes the user's other sessions and tokens (unless
// keep_tokens), and disabling revokes them for good.

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

for (const kind of await testDatabaseKinds()) {
  describe(`credential revocation on ${kind.name}`, () => {
    let t: AuthTestContext;
    let admin: string;
    before(async () => {
      t = await createAuthTestContext(kind.fresh());
      admin = await t.login('admin', TEST_ADMIN_PASSWORD);
    });
    after(() => t.close());

    const addUser = async (username: string, password: string) => {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username, role: 'operator', password } });
      assert.equal(r.statusCode, 201, r.body);
    };
    const mint = async (session: string, name: string) => {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(session), payload: { name } });
      assert.equal(r.statusCode, 201, r.body);
      return r.json<{ id: number; token: string }>();
    };
    const works = async (token: string) => (await t.app.inject({ url: '/api/v1/auth/me', headers: bearer(token) })).statusCode === 200;

    test('changing one’s own password revokes the other sessions and every API token; the session used stays', async () => {
      await addUser('pat', 'pat-password-1');
      const session = await t.login('pat', 'pat-password-1');
      const other = await t.login('pat', 'pat-password-1');
      const ci = await mint(session, 'ci');
      const r = await t.app.inject({ method: 'PUT', url: '/api/v1/auth/password', headers: bearer(session), payload: { current_password: 'pat-password-1', new_password: 'pat-password-2' } });
      assert.equal(r.statusCode, 204, r.body);
      assert.equal(await works(session), true, 'the session that changed it stays');
      assert.equal(await works(other), false, 'another session ends');
      assert.equal(await works(ci.token), false, 'the API token is revoked');
      const listed = await t.app.inject({ url: '/api/v1/tokens', headers: bearer(session) });
      assert.notEqual(listed.json().items.find((x: { id: number }) => x.id === ci.id).revoked_at, null);
      const event = await t.app.inject({ url: '/api/v1/events?kind=user.password_changed&actor=user:pat', headers: bearer(admin) });
      assert.deepEqual(event.json().items[0].data.revoked_token_ids, [ci.id]);
    });

    test('keep_tokens: true keeps the API tokens (the other sessions still end)', async () => {
      await addUser('kim', 'kim-password-1');
      const session = await t.login('kim', 'kim-password-1');
      const other = await t.login('kim', 'kim-password-1');
      const ci = await mint(session, 'ci');
      const r = await t.app.inject({
        method: 'PUT',
        url: '/api/v1/auth/password',
        headers: bearer(session),
        payload: { current_password: 'kim-password-1', new_password: 'kim-password-2', keep_tokens: true },
      });
      assert.equal(r.statusCode, 204, r.body);
      assert.equal(await works(ci.token), true);
      assert.equal(await works(other), false);
    });

    test('a password change made with an API token keeps that token and revokes the others', async () => {
      await addUser('tia', 'tia-password-1');
      const session = await t.login('tia', 'tia-password-1');
      const [caller, spare] = [await mint(session, 'caller'), await mint(session, 'spare')];
      const r = await t.app.inject({ method: 'PUT', url: '/api/v1/auth/password', headers: bearer(caller.token), payload: { current_password: 'tia-password-1', new_password: 'tia-password-2' } });
      assert.equal(r.statusCode, 204, r.body);
      assert.equal(await works(caller.token), true);
      assert.equal(await works(spare.token), false);
      assert.equal(await works(session), false);
    });

    test('a password reset by an admin revokes the user’s sessions and tokens, unless keep_tokens', async () => {
      await addUser('rex', 'rex-password-1');
      const session = await t.login('rex', 'rex-password-1');
      const first = await mint(session, 'first');
      const reset = await t.app.inject({ method: 'PUT', url: '/api/v1/users/rex', headers: bearer(admin), payload: { password: 'rex-password-2' } });
      assert.equal(reset.statusCode, 200, reset.body);
      assert.equal(await works(session), false);
      assert.equal(await works(first.token), false);

      const again = await t.login('rex', 'rex-password-2');
      const second = await mint(again, 'second');
      const kept = await t.app.inject({ method: 'PUT', url: '/api/v1/users/rex', headers: bearer(admin), payload: { password: 'rex-password-3', keep_tokens: true } });
      assert.equal(kept.statusCode, 200, kept.body);
      assert.equal(await works(again), false, 'sessions end anyway');
      assert.equal(await works(second.token), true);
    });

    test('disabling revokes the tokens, and re-enabling does not bring them back', async () => {
      await addUser('dan', 'dan-password-1');
      const session = await t.login('dan', 'dan-password-1');
      const ci = await mint(session, 'ci');
      const off = await t.app.inject({ method: 'PUT', url: '/api/v1/users/dan', headers: bearer(admin), payload: { disabled: true } });
      assert.equal(off.statusCode, 200, off.body);
      const on = await t.app.inject({ method: 'PUT', url: '/api/v1/users/dan', headers: bearer(admin), payload: { disabled: false } });
      assert.equal(on.statusCode, 200, on.body);
      assert.equal(await works(ci.token), false, 'the token stays revoked');
      assert.equal(await works(session), false, 'the session stays ended');
      const list = await t.app.inject({ url: '/api/v1/tokens', headers: bearer(admin) });
      assert.notEqual(list.json().items.find((x: { id: number }) => x.id === ci.id).revoked_at, null);
    });

    test('keep_tokens without a password, or with disabling, is refused and changes nothing', async () => {
      await addUser('zoe', 'zoe-password-1');
      const session = await t.login('zoe', 'zoe-password-1');
      const ci = await mint(session, 'ci');
      for (const payload of [{ keep_tokens: true }, { disabled: true, password: 'zoe-password-2', keep_tokens: true }, { keep_tokens: 'yes' }]) {
        const r = await t.app.inject({ method: 'PUT', url: '/api/v1/users/zoe', headers: bearer(admin), payload });
        assert.equal(r.statusCode, 400, JSON.stringify(payload));
        assert.equal(r.json().error.code, 'invalid_input');
        assert.match(r.json().error.message, /keep_tokens/);
      }
      assert.equal(await works(session), true);
      assert.equal(await works(ci.token), true);
      assert.equal((await t.app.inject({ url: '/api/v1/users/zoe', headers: bearer(admin) })).json().disabled, false);
    });
  });
}
