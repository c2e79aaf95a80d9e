import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { installErrorHandling } from '../http/error-handler.ts';
import { declaredRoutes, installAccessControl, type DeclaredRoute } from '../http/access.ts';
import { roleAtLeast, type Role } from '../core/types.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

/** Exactly the routes that answer without a token (product.md, plus the dashboard's login page and assets). */
function isAllowedPublic(route: DeclaredRoute): boolean {
  const key = `${route.method} ${route.url}`;
  const exact = [
    'POST /api/v1/enroll',
    'GET /healthz',
    'HEAD /healthz',
    'GET /readyz',
    'HEAD /readyz',
    'GET /metrics',
    'HEAD /metrics',
    'GET /api/v1/openapi.json',
    'HEAD /api/v1/openapi.json',
    'POST /api/v1/auth/login',
    'GET /login',
    'HEAD /login',
    'POST /login',
  ];
  return exact.includes(key) || ((route.method === 'GET' || route.method === 'HEAD') && route.url.startsWith('/static/'));
}

/** Calls from a signed-in user that change only the caller's own things (their session, password, tokens). */
function isSelfService(route: DeclaredRoute): boolean {
  return ['POST /api/v1/auth/logout', 'POST /logout', 'PUT /api/v1/auth/password', 'POST /api/v1/tokens', 'DELETE /api/v1/tokens/:id'].includes(`${route.method} ${route.url}`);
}

const isRead = (route: DeclaredRoute) => route.method === 'GET' || route.method === 'HEAD';
const concrete = (url: string) => url.replace(/:[A-Za-z_]+/g, '999999').replace(/\*$/, 'x');

for (const kind of await testDatabaseKinds()) {
  describe(`route access matrix on ${kind.name}`, () => {
    let t: AuthTestContext;
    let base: string;
    let routes: DeclaredRoute[];
    const tokens = {} as Record<Role, string>;

    /** One real HTTP request; resolves on the status line, so streaming routes cannot hang the test. */
    async function call(route: DeclaredRoute, token?: string): Promise<{ status: number; location: string | null; body: string }> {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 10_000);
      try {
        const res = await fetch(base + concrete(route.url), {
          method: route.method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(route.method === 'GET' || route.method === 'HEAD' ? {} : { 'content-type': 'application/json' }) },
          ...(route.method === 'GET' || route.method === 'HEAD' ? {} : { body: '{}' }),
          redirect: 'manual',
          signal: abort.signal,
        });
        const body = res.status === 401 || res.status === 403 ? await res.text() : '';
        if (!body) await res.body?.cancel();
        return { status: res.status, location: res.headers.get('location'), body };
      } finally {
        clearTimeout(timer);
      }
    }

    before(async () => {
      t = await createAuthTestContext(kind.fresh());
      base = await t.app.listen({ host: '127.0.0.1', port: 0 });
      routes = declaredRoutes(t.app).filter((r) => r.method !== 'OPTIONS');
      const admin = await t.login('admin', TEST_ADMIN_PASSWORD);
      for (const role of ['viewer', 'operator', 'admin'] as const) {
        let session = admin;
        if (role !== 'admin') {
          const created = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: `Bearer ${admin}` }, payload: { username: `matrix-${role}`, role, password: 'matrix-password' } });
          assert.equal(created.statusCode, 201, created.body);
          session = await t.login(`matrix-${role}`, 'matrix-password');
        }
        // API tokens, not sessions: the matrix calls logout, which would end a session.
        const minted = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: `Bearer ${session}` }, payload: { name: 'matrix' } });
        assert.equal(minted.statusCode, 201, minted.body);
        tokens[role] = minted.json().token;
      }
    });
    after(() => t.close());

    test('the router holds the routes of every part, and each declared its access', () => {
      const keys = routes.map((r) => `${r.method} ${r.url}`);
      for (const expected of ['GET /api/v1/machines', 'PUT /api/v1/machines/:id', 'POST /api/v1/users', 'GET /api/v1/events', 'POST /api/v1/tokens', 'POST /api/v1/enroll']) {
        assert.ok(keys.includes(expected), `${expected} is registered`);
      }
      assert.deepEqual(routes.filter((r) => r.access === undefined), []);
    });

    test('public routes are exactly the listed ones', () => {
      const unexpected = routes.filter((r) => r.access === 'public' && !isAllowedPublic(r)).map((r) => `${r.method} ${r.url}`);
      assert.deepEqual(unexpected, [], 'routes that answer without a token but should not');
    });

    test('anonymous: 401 on every non-public route (a dashboard page may redirect to /login instead)', async () => {
      for (const route of routes.filter((r) => r.access !== 'public')) {
        const r = await call(route);
        const isPage = !route.url.startsWith('/api/') && route.url !== '/metrics';
        const redirected = isPage && (r.status === 302 || r.status === 303) && (r.location ?? '').startsWith('/login');
        assert.ok(r.status === 401 || redirected, `${route.method} ${route.url} anonymous: got ${r.status}`);
        if (r.status === 401 && route.method !== 'HEAD' && !isPage) assert.equal(JSON.parse(r.body).error.code, 'unauthorized');
      }
    });

    test('public routes never ask anonymous callers to authenticate (a sign-in form may still refuse bad credentials)', async () => {
      for (const route of routes.filter((r) => r.access === 'public')) {
        const r = await call(route);
        const isSignIn = route.url.endsWith('/login');
        assert.ok(r.status !== 403 && (r.status !== 401 || isSignIn), `${route.method} ${route.url}: ${r.status}`);
        assert.doesNotMatch(r.body, /authentication required/, `${route.method} ${route.url}`);
      }
    });

    test('a role below the required one: 403; the required role or above: neither 401 nor 403', async () => {
      for (const route of routes.filter((r) => r.access !== undefined && r.access !== 'public')) {
        for (const role of ['viewer', 'operator', 'admin'] as const) {
          const r = await call(route, tokens[role]);
          if (roleAtLeast(role, route.access as Role)) {
            assert.ok(r.status !== 401 && r.status !== 403, `${route.method} ${route.url} as ${role} (needs ${route.access}): got ${r.status} ${r.body}`);
          } else {
            assert.equal(r.status, 403, `${route.method} ${route.url} as ${role} (needs ${route.access})`);
            if (route.method !== 'HEAD' && route.url.startsWith('/api/')) assert.equal(JSON.parse(r.body).error.code, 'forbidden');
          }
        }
      }
    });

    test('a viewer cannot change anything: every non-read route but their own session, password and tokens is 403', async () => {
      const changes = routes.filter((r) => !isRead(r) && r.access !== 'public' && !isSelfService(r));
      assert.ok(changes.length >= 8, `found ${changes.length} changing routes`);
      for (const route of changes) {
        assert.notEqual(route.access, 'viewer', `${route.method} ${route.url} lets a viewer change something`);
        assert.equal((await call(route, tokens.viewer)).status, 403, `${route.method} ${route.url}`);
      }
    });
  });
}

describe('a route without declared access', () => {
  test('cannot be registered: the server refuses it', async () => {
    const app = Fastify();
    installAccessControl(app, { authenticate: async () => undefined });
    assert.throws(() => app.get('/api/v1/open', async () => 'oops'), /route GET \/api\/v1\/open declares no access/);
    await app.close();
  });

  test('a declared role is enforced on any server with access control', async () => {
    const app = Fastify();
    installErrorHandling(app);
    installAccessControl(app, { authenticate: async () => undefined });
    app.get('/x', { config: { access: 'operator' } }, async () => 'secret');
    const r = await app.inject({ url: '/x' });
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error.code, 'unauthorized');
    await app.close();
  });
});
