import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { enrollmentPayload } from '../../test/support/context.ts';
import { startTestListeners, type TestListeners } from '../../test/support/listeners.ts';

const admin = { 'x-test-role': 'admin' };

/** Every list route of the API, each taking limit and offset. */
const LIST_ROUTES = ['/api/v1/machines', '/api/v1/machines/PAGE1/builds', '/api/v1/machines/PAGE1/events', '/api/v1/events', '/api/v1/users', '/api/v1/tokens'];

/** Values past 2^53, past 64 bits, and otherwise not a page position. */
const HUGE = ['9007199254740993', '99999999999999999999', '1e300', '18446744073709551616', '2147483648'];

for (const kind of await testDatabaseKinds()) {
  describe(`paging and id bounds on ${kind.name}`, { timeout: 120_000 }, () => {
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let listeners: TestListeners;
    before(async () => {
      listeners = await startTestListeners(kind.fresh());
      ({ api, boot } = listeners);
      assert.equal((await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('PAGE1') })).statusCode, 201);
    });
    after(async () => listeners.close());

    test('offset or limit beyond 2^53 (or 2^31) is a 400 naming the parameter on every list route, never a 500', async () => {
      for (const route of LIST_ROUTES) {
        for (const value of HUGE) {
          for (const param of ['offset', 'limit']) {
            const r = await api.inject({ url: `${route}?${param}=${value}`, headers: admin });
            assert.equal(r.statusCode, 400, `${route}?${param}=${value}: ${r.body}`);
            assert.equal(r.json().error.code, 'invalid_input');
            assert.match(r.json().error.message, new RegExp(`querystring/${param} must be`));
          }
        }
        // Token listing needs a signed-in user (not the test header): it is reached in the hostile suite.
        if (route === '/api/v1/tokens') continue;
        const ok = await api.inject({ url: `${route}?offset=2147483647&limit=500`, headers: admin });
        assert.equal(ok.statusCode, 200, `${route} at the largest offset: ${ok.body}`);
        assert.deepEqual(ok.json().items, []);
      }
    });

    test('ids beyond 32 bits are a 400 or a 404, never a 500 (PostgreSQL integer columns)', async () => {
      const huge = ['2147483648', '999999999999999', '99999999999999999999'];
      for (const id of huge) {
        for (const url of [`/api/v1/machines/${id}`, `/api/v1/machines/${id}/builds`, `/api/v1/machines/${id}/events`, `/api/v1/builds/${id}`, `/api/v1/events?machine=${id}`, `/machines/${id}`, `/builds/${id}`]) {
          const r = await api.inject({ url, headers: admin });
          assert.ok(r.statusCode === 400 || r.statusCode === 404, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
        }
        const booted = await boot.inject({ method: 'POST', url: '/api/v1/machines/PAGE1/booted', payload: `{"build_id":${id},"token":"x"}`, headers: { 'content-type': 'application/json' } });
        assert.equal(booted.statusCode, 400, `booted ${id}: ${booted.body}`);
      }
    });
  });
}
