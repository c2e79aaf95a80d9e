import { buildApiServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { enrollmentPayload } from '../../test/support/context.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';
import { SESSION_COOKIE } from './authenticator.ts';
import { csrfToken, logInWithCookie } from './session-cookie.ts';

for (const kind of await testDatabaseKinds()) {
  describe(`dashboard cookie sessions and CSRF on ${kind.name}`, () => {
    let t: AuthTestContext;
    let app: FastifyInstance;
    let cookie: string;
    let csrf: string;
    before(async () => {
      t = await createAuthTestContext(kind.fresh(), { METAL_TRUST_PROXY: '127.0.0.1' });
      // Stand-ins for the dashboard's login form and a page that embeds the CSRF token.
      app = await buildApiServer(t.ctx, [
        (a, ctx) => {
          a.post<{ Body: { username: string; password: string } }>('/test/login', { config: { access: 'public' } }, async (request, reply) => {
            await logInWithCookie(ctx.auth, request, reply, request.body.username, request.body.password);
            return reply.code(204).send();
          });
          a.get('/test/form', { config: { access: 'viewer' } }, async (request) => ({ csrf: csrfToken(request) ?? null }));
        },
      ]);
      await t.app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('CSRF1') });
      const login = await app.inject({ method: 'POST', url: '/test/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
      assert.equal(login.statusCode, 204);
      const setCookie = String(login.headers['set-cookie']);
      cookie = setCookie.split(';')[0]!;
      csrf = (await app.inject({ url: '/test/form', headers: { cookie } })).json().csrf;
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('the cookie is HttpOnly, SameSite=Strict, Path=/, and Secure only over https', async () => {
      const plain = await app.inject({ method: 'POST', url: '/test/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
      const attributes = String(plain.headers['set-cookie']);
      assert.match(attributes, new RegExp(`^${SESSION_COOKIE}=ms_[A-Za-z0-9_-]{43}; Max-Age=43200; Path=/; HttpOnly; SameSite=Strict$`));
      const https = await app.inject({ method: 'POST', url: '/test/login', headers: { 'x-forwarded-proto': 'https' }, payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
      assert.match(String(https.headers['set-cookie']), /; Secure$/);
    });

    test('the cookie authenticates reads without a CSRF token', async () => {
      const r = await app.inject({ url: '/api/v1/machines/CSRF1', headers: { cookie } });
      assert.equal(r.statusCode, 200);
      assert.equal(typeof csrf, 'string');
      assert.ok(csrf.length >= 40);
    });

    test('a cookie-authenticated change without the CSRF token is refused (403) and changes nothing', async () => {
      for (const headers of [{ cookie }, { cookie, 'x-csrf-token': 'forged' }, { cookie, 'x-csrf-token': csrf.slice(0, -2) + 'xx' }]) {
        const r = await app.inject({ method: 'PUT', url: '/api/v1/machines/CSRF1', headers, payload: { hostname: 'forged' } });
        assert.equal(r.statusCode, 403);
        assert.deepEqual(r.json(), { error: { code: 'forbidden', message: 'missing or wrong CSRF token: reload the page and try again' } });
      }
      assert.equal((await t.ctx.machines.get('CSRF1')).hostname, null);
    });

    test('with the token, in the header or as the _csrf form field, the change is accepted', async () => {
      const viaHeader = await app.inject({ method: 'PUT', url: '/api/v1/machines/CSRF1', headers: { cookie, 'x-csrf-token': csrf }, payload: { hostname: 'web-01' } });
      assert.equal(viaHeader.statusCode, 200, viaHeader.body);
      assert.equal((await t.ctx.machines.get('CSRF1')).hostname, 'web-01');
      // A form post: the CSRF check reads the parsed `_csrf` field (the logout route takes no body of its own).
      const form = await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie, 'content-type': 'application/json' }, payload: { _csrf: csrf } });
      assert.equal(form.statusCode, 204);
      assert.match(String(form.headers['set-cookie']), new RegExp(`^${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict`));
      assert.equal((await app.inject({ url: '/api/v1/machines/CSRF1', headers: { cookie } })).statusCode, 401, 'the session ended');
    });

    test('a bearer-token change needs no CSRF token, and public routes ignore a stale cookie', async () => {
      const token = await t.login('admin', TEST_ADMIN_PASSWORD);
      const r = await app.inject({ method: 'PUT', url: '/api/v1/machines/CSRF1', headers: { authorization: `Bearer ${token}`, cookie }, payload: { description: 'rack 4' } });
      assert.equal(r.statusCode, 200);
      const enroll = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: { cookie }, payload: enrollmentPayload('CSRF2') });
      assert.equal(enroll.statusCode, 201);
    });
  });
}
