import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildApiServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileString, macFor, pct, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Generated query strings on every list route and page: never a 5xx, a 400 with an error body for a
 * value the route refuses, and no row written by a read.
 */

const admin = { 'x-test-role': 'admin' };

const LIST_ROUTES = [
  '/api/v1/machines',
  '/api/v1/machines/QUERY1/builds',
  '/api/v1/machines/QUERY1/events',
  '/api/v1/events',
  '/api/v1/users',
  '/api/v1/tokens',
  '/api/v1/builds/1',
  '/api/v1/builds/1/log',
  '/',
  '/machines',
  '/machines/QUERY1',
  '/builds/1',
  '/admin/users',
  '/admin/tokens',
  '/login',
  '/profiles',
  '/rules',
  '/api/v1/profiles',
  '/api/v1/rules',
];

const KEYS = ['limit', 'offset', 'status', 'search', 'selector', 'profile', 'out_of_date', 'stale', 'sort', 'order', 'actor', 'machine', 'kind', 'since', 'until', 'fragment', 'notice', 'id', '__proto__', 'constructor'];

/** Numbers as text, near and past every bound a parser or a database has. */
const numberText = fc.oneof(
  fc.constantFrom('0', '-0', '-1', '1', '50', '500', '501', '2147483647', '2147483648', '9007199254740991', '9007199254740993', '18446744073709551616', '1e300', '1e-7', '0x10', '1.5', 'NaN', 'Infinity', ' 5', '5 ', '+5', ''),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.double().map(String),
);

/** One query parameter: a known key or a hostile one, with a hostile or numeric value, maybe repeated. */
const param = fc.tuple(fc.oneof(fc.constantFrom(...KEYS), hostileString(20)), fc.oneof(numberText, hostileString(), fc.constantFrom('ready', 'asc', 'desc', 'hostname', 'last_seen_at', 'table', 'live', 'overview', 'user:admin', '2026-01-31T00:00:00Z', 'role=web', 'role in (a,b),!gpu', 'x notin (', 'a/b/c=d', "role=' OR 1=1 --", 'k="$.a"', 'a.b/c=x')));

for (const kind of await testDatabaseKinds()) {
  describe(`hostile query strings on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      const r = await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('QUERY1', { mac_address: macFor('QUERY1') }) });
      assert.equal(r.statusCode, 201);
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    test('every list route and page: no 5xx, errors with a body, nothing written', async () => {
      const before = await rowCounts(t.ctx);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...LIST_ROUTES), fc.array(param, { maxLength: 5 }), async (route, params) => {
          const query = params.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
          const url = query ? `${route}?${query}` : route;
          const r = await api.inject({ url, headers: admin });
          assert.ok(r.statusCode < 500, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          if (r.statusCode >= 400 && route.startsWith('/api/')) {
            const error = (r.json() as { error?: { code?: unknown; message?: unknown } }).error;
            assert.equal(typeof error?.code, 'string', `${url}: ${r.body.slice(0, 200)}`);
            assert.equal(typeof error?.message, 'string', `${url}: ${r.body.slice(0, 200)}`);
          }
        }),
        { seed: 0x9e4e_0001, numRuns: runs(kind.name === 'sqlite' ? 400 : 150) },
      );
      assert.deepEqual(await rowCounts(t.ctx), before, 'a read wrote rows');
    });
  });
}
