import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../src/core/logger.ts';
import { createContext, type AppContext } from '../../src/server/context.ts';
import { buildApiServer, buildBootServer } from '../../src/server/roles.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../support/auth-context.ts';
import { enrollmentPayload } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';

// Issue 19: with N API replicas on one database, a client gets the limit once, not N times. Two
// contexts on one database stand for two replicas (test/cluster/scale-out.test.ts does it with
// processes behind nginx).

for (const kind of await testDatabaseKinds()) {
  describe(`limits shared by two replicas on ${kind.name}`, () => {
    let a: AuthTestContext;
    let b: AppContext;
    let replicas: FastifyInstance[];
    before(async () => {
      a = await createAuthTestContext(kind.fresh(), { METAL_ENROLL_RATE: '4' });
      b = await createContext(a.ctx.config, createLogger('silent'));
      const bApi = await buildApiServer(b);
      const bBoot = await buildBootServer(b, { registrationTtlMs: 0 });
      replicas = [a.app, bApi, bBoot];
    });
    after(async () => {
      await Promise.all(replicas.slice(1).map((app) => app.close()));
      await b.close();
      await a.close();
    });

    test('failed sign-ins spread over both replicas: the sixth is refused by either, the right password too', async () => {
      const [one, two] = replicas as [FastifyInstance, FastifyInstance];
      const login = (app: FastifyInstance, password: string, remoteAddress: string) =>
        app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password }, remoteAddress });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await login(i % 2 === 0 ? one : two, `wrong-${i}-password`, '198.51.100.40')).statusCode);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
      for (const app of [one, two]) {
        const r = await login(app, TEST_ADMIN_PASSWORD, '198.51.100.40');
        assert.equal(r.statusCode, 429, r.body);
        assert.match(r.json().error.message, /too many failed sign-in attempts from this address/);
      }
      assert.equal((await login(two, TEST_ADMIN_PASSWORD, '198.51.100.41')).statusCode, 200, 'another address signs in');
    });

    test('a success on one replica gives the address its budget back on the other', async () => {
      const [one, two] = replicas as [FastifyInstance, FastifyInstance];
      const login = (app: FastifyInstance, password: string) =>
        app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password }, remoteAddress: '198.51.100.42' });
      for (let i = 0; i < 4; i++) assert.equal((await login(one, 'typo-password')).statusCode, 401);
      assert.equal((await login(two, TEST_ADMIN_PASSWORD)).statusCode, 200);
      for (let i = 0; i < 4; i++) assert.equal((await login(one, 'typo-password')).statusCode, 401, `failure ${i + 1} after the reset`);
    });

    test('METAL_ENROLL_RATE holds across the replicas\' API and boot listeners', async () => {
      const results: number[] = [];
      for (let i = 0; i < 9; i++) {
        const app = replicas[i % replicas.length]!;
        results.push((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(`SHARED${i}`), remoteAddress: '10.0.9.1' })).statusCode);
      }
      assert.deepEqual(results, [201, 201, 201, 201, 429, 429, 429, 429, 429]);
      const stored = await a.ctx.machines.list({ limit: 50, offset: 0, search: 'SHARED' });
      assert.equal(stored.total, 4, 'refused enrollments wrote nothing');
      const other = await replicas[1]!.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('SHARED9'), remoteAddress: '10.0.9.2' });
      assert.equal(other.statusCode, 201, 'another address is not limited');
    });
  });
}

describe('the sign-in throttle fails closed', () => {
  test('a failing limiter store refuses the sign-in instead of skipping the throttle', async (t) => {
    const s = await createAuthTestContext((await testDatabaseKinds())[0]!.fresh());
    t.after(() => s.close());
    const rateLimits = s.ctx.storage.rateLimits;
    const original = rateLimits.take.bind(rateLimits);
    rateLimits.take = () => Promise.reject(new Error('rate_limits: relation is gone'));
    try {
      const r = await s.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
      assert.equal(r.statusCode, 500);
      assert.equal(r.json().error.code, 'internal');
    } finally {
      rateLimits.take = original;
    }
    assert.equal((await s.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } })).statusCode, 200);
  });
});
