import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { assertBootHealth, MAX_HEALTH_OUTPUT } from '../../src/core/boot-health.ts';
import { DomainError } from '../../src/core/errors.ts';
import { buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileJson, hostileString, macFor, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Booted reports with generated `health` objects, each with a fresh valid token: a health result the
 * core accepts is recorded as sent (on the machine and in the event's data); anything else is a 400
 * with an error body, and the machine and the event log are untouched.
 */

const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

const health = fc.oneof(
  fc.record(
    {
      ok: fc.oneof(fc.boolean(), hostileJson(1)),
      exit_code: fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constant(null), fc.double(), hostileJson(1)),
      output: fc.oneof(hostileString(200), fc.constant('x'.repeat(MAX_HEALTH_OUTPUT)), fc.constant('é'.repeat(MAX_HEALTH_OUTPUT + 1)), fc.constant('a\u0000b\u001b[2J</script>'), hostileJson(1)),
      extra: hostileJson(1),
    },
    { requiredKeys: [] },
  ),
  hostileJson(2),
);

const acceptable = (value: unknown): boolean => {
  try {
    assertBootHealth(value);
    return true;
  } catch (err) {
    if (err instanceof DomainError) return false;
    throw err;
  }
};

for (const kind of await testDatabaseKinds()) {
  describe(`hostile health results in booted reports on ${kind.name}`, { timeout: 180_000 }, () => {
    let t: TestContext;
    let boot: FastifyInstance;
    let buildId = 0;
    let secret = '';
    let machineId = 0;
    // Each report presents a token issued after the last accepted one (tokens are single use).
    let issued = Date.now() - 50_000;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
      const { machine } = await t.ctx.machines.enroll(enrollmentPayload('HEALTH1', { mac_address: macFor('HEALTH1') }), { kind: 'machine', name: 'HEALTH1' });
      machineId = machine.id;
      await t.ctx.machines.update('HEALTH1', { hostname: 'health-1' }, OPERATOR);
      const build = await t.ctx.machines.requestBuild('HEALTH1', OPERATOR);
      buildId = build.id;
      secret = (await t.ctx.storage.builds.findRecord(build.id))!.boot_token;
    });
    after(async () => {
      await boot.close();
      await t.close();
    });

    test('accepted results are recorded as sent; refused ones are a 400 with an error body and change nothing', async () => {
      await fc.assert(
        fc.asyncProperty(health, async (value) => {
          const token = await t.ctx.builds.issueBootToken(buildId, secret, issued++);
          const before = [await t.ctx.storage.machines.findById(machineId), await rowCounts(t.ctx)];
          const payload = JSON.stringify({ build_id: buildId, token, health: value });
          const r = await boot.inject({ method: 'POST', url: '/api/v1/machines/HEALTH1/booted', headers: { 'content-type': 'application/json' }, payload });
          const where = `${payload.slice(0, 300)}: ${r.statusCode} ${r.body.slice(0, 300)}`;
          if (acceptable(value)) {
            assert.equal(r.statusCode, 200, where);
            const stored = (await t.ctx.storage.machines.findById(machineId))!.booted_health;
            assert.deepEqual(stored, assertBootHealth(value), where);
            const [event] = (await t.ctx.storage.events.list({ machineId, kind: 'machine.booted', limit: 1, offset: 0 })).items;
            assert.deepEqual((event!.data as { health?: unknown }).health, stored, where);
          } else {
            assert.equal(r.statusCode, 400, where);
            const error = (r.json() as { error?: { code?: unknown; message?: unknown } }).error;
            assert.equal(error?.code, 'invalid_input', where);
            assert.equal(typeof error?.message, 'string', where);
            assert.deepEqual([await t.ctx.storage.machines.findById(machineId), await rowCounts(t.ctx)], before, `a refusal changed something: ${where}`);
          }
        }),
        { seed: 0x9e4e_0016, numRuns: runs(kind.name === 'sqlite' ? 200 : 80) },
      );
    });
  });
}
