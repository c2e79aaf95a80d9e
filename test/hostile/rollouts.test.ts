import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildApiServer, buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileJson, hostileString, macFor, pct, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Generated requests to the rollout, rollback and reboot-request endpoints: never a 5xx, a 4xx with an
 * error body, and nothing written. The one machine has no hostname, so even a selector that matches it
 * cannot start a rollout.
 */

const operator = { 'x-test-role': 'operator' };

const FIELDS = ['selector', 'build', 'canary', 'batch_size', 'max_unavailable', 'max_failures', 'health_timeout_seconds', 'reboot', '__proto__', 'constructor'];
const selectorText = fc.oneof(
  hostileString(),
  fc.constantFrom('role=web', '!gpu', 'role in (web,db)', 'role notin (x)', 'a', 'role!=web', 'k=', '=v', 'role in ()', ','.repeat(3), 'x'.repeat(1025)),
);
const body = fc.oneof(
  hostileJson(),
  fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), hostileString(20)), fc.oneof(hostileJson(1), selectorText), { maxKeys: 8 }),
  fc.record(
    {
      selector: selectorText,
      build: fc.oneof(fc.constantFrom('missing', 'always'), hostileJson(1)),
      canary: fc.oneof(fc.integer({ min: -5, max: 20_000 }), hostileJson(1)),
      batch_size: fc.oneof(fc.integer({ min: -5, max: 20_000 }), hostileJson(1)),
      max_failures: fc.oneof(fc.integer({ min: -5, max: 20_000 }), hostileJson(1)),
      health_timeout_seconds: fc.oneof(fc.integer({ min: -5, max: 100_000 }), fc.double(), hostileJson(1)),
      reboot: fc.oneof(fc.constantFrom('power', 'agent', 'none'), hostileJson(1)),
    },
    { requiredKeys: ['selector'] },
  ),
);
const idText = fc.oneof(hostileString(30), fc.constantFrom('1', '0', '-1', '9007199254740993', '1e3', '2147483648'));

function assertErrorBody(what: string, status: number, text: string): void {
  assert.ok(status >= 400 && status < 500, `${what}: ${status} ${text.slice(0, 200)}`);
  const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
  assert.equal(typeof error?.code, 'string', `${what}: ${text.slice(0, 200)}`);
  assert.equal(typeof error?.message, 'string', `${what}: ${text.slice(0, 200)}`);
}

for (const kind of await testDatabaseKinds()) {
  describe(`hostile rollout requests on ${kind.name}`, { timeout: 180_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
      const r = await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('HOST1', { mac_address: macFor('HOST1') }) });
      assert.equal(r.statusCode, 201);
    });
    after(async () => {
      await boot.close();
      await api.close();
      await t.close();
    });

    test('POST /api/v1/rollouts with generated bodies: refused with a 4xx and an error body, nothing written', async () => {
      const before = await rowCounts(t.ctx);
      await fc.assert(
        fc.asyncProperty(body, async (payload) => {
          const r = await api.inject({ method: 'POST', url: '/api/v1/rollouts', headers: { ...operator, 'content-type': 'application/json' }, payload: JSON.stringify(payload) ?? 'null' });
          assertErrorBody(JSON.stringify(payload)?.slice(0, 200) ?? 'undefined', r.statusCode, r.body);
        }),
        { seed: 0x9e4e_0017, numRuns: runs(kind.name === 'sqlite' ? 300 : 100) },
      );
      assert.deepEqual(await rowCounts(t.ctx), before, 'a refused request wrote rows');
    });

    test('rollback, rollout reads and controls with generated ids and bodies: no 5xx, nothing written', async () => {
      const before = await rowCounts(t.ctx);
      await fc.assert(
        fc.asyncProperty(idText, fc.constantFrom('rollback', 'get', 'pause', 'resume', 'cancel'), hostileJson(2), async (id, what, payload) => {
          const r =
            what === 'rollback'
              ? await api.inject({ method: 'POST', url: `/api/v1/machines/${pct(id)}/rollback`, headers: { ...operator, 'content-type': 'application/json' }, payload: JSON.stringify(payload) ?? 'null' })
              : what === 'get'
                ? await api.inject({ url: `/api/v1/rollouts/${pct(id)}`, headers: operator })
                : await api.inject({ method: 'POST', url: `/api/v1/rollouts/${pct(id)}/${what}`, headers: operator });
          assertErrorBody(`${what} ${id}`, r.statusCode, r.body);
        }),
        { seed: 0x9e4e_0018, numRuns: runs(kind.name === 'sqlite' ? 300 : 100) },
      );
      assert.deepEqual(await rowCounts(t.ctx), before, 'a refused request wrote rows');
    });

    test('GET /api/v1/machines/{tag}/reboot-request on the boot listener with generated tags and queries: 4xx, nothing written', async () => {
      const before = await rowCounts(t.ctx);
      await fc.assert(
        fc.asyncProperty(fc.oneof(idText, fc.constant('HOST1')), fc.oneof(idText, fc.constant('1')), hostileString(), async (tag, build, token) => {
          const r = await boot.inject({ url: `/api/v1/machines/${pct(tag)}/reboot-request?build_id=${pct(build)}&token=${pct(token)}` });
          // A path segment past the boot listener's 1024 characters is cut by the router itself (as for booted reports).
          if (r.statusCode === 414) return;
          assertErrorBody(`${tag} ${build} ${token}`, r.statusCode, r.body);
        }),
        { seed: 0x9e4e_0019, numRuns: runs(kind.name === 'sqlite' ? 300 : 100) },
      );
      assert.deepEqual(await rowCounts(t.ctx), before, 'a refused request wrote rows');
    });
  });
}
