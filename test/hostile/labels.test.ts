import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildApiServer } from '../../src/server/roles.ts';
import { assertLabels } from '../../src/core/labels.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileString, macFor, runs } from '../support/hostile.ts';

/**
 * Generated label maps on PUT /api/v1/machines/{id}: a 400 naming the label and nothing changed, or a
 * 200 storing exactly what a valid map says; never a 5xx. Then every stored label is found again by a
 * selector built from it (keys with prefixes, dots and empty values included).
 */

const operator = { 'x-test-role': 'operator' };

const labelKey = fc.oneof(
  fc.constantFrom('role', 'rack', 'example.com/role', 'a.b-c_d', 'Z9', 'x'.repeat(63), 'x'.repeat(64), 'UPPER.example/x', '/x', 'x/', '$.a', 'a"b', "a'b", 'a b'),
  hostileString(70),
);
const labelValue = fc.oneof(fc.constantFrom('', 'web', 'r12', 'a.b_c-d', 'x'.repeat(63), 'x'.repeat(64), '-x', 'x-', "' OR 1=1 --"), hostileString(70));
const labelMap = fc.dictionary(labelKey, fc.oneof(labelValue, fc.constantFrom<unknown>(1, null, true, [], {})), { maxKeys: 6 });

for (const kind of await testDatabaseKinds()) {
  describe(`hostile labels on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      const r = await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('LABEL1', { mac_address: macFor('LABEL1') }) });
      assert.equal(r.statusCode, 201);
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    test('PUT labels: valid maps stored exactly, others refused with a message and nothing changed; selectors find them', async () => {
      let stored: Record<string, string> = {};
      await fc.assert(
        fc.asyncProperty(labelMap, async (labels) => {
          let valid: Record<string, string> | undefined;
          try {
            valid = assertLabels(labels);
          } catch {
            valid = undefined;
          }
          const r = await api.inject({ method: 'PUT', url: '/api/v1/machines/LABEL1', headers: operator, payload: { labels } });
          assert.ok(r.statusCode < 500, `${JSON.stringify(labels)}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          const now = (await api.inject({ url: '/api/v1/machines/LABEL1', headers: operator })).json().labels;
          if (valid) {
            assert.equal(r.statusCode, 200, `${JSON.stringify(labels)}: ${r.body.slice(0, 200)}`);
            assert.deepEqual(now, valid);
            stored = valid;
            for (const [k, v] of Object.entries(valid)) {
              for (const selector of [`${k}=${v}`, k, `${k} in (${v || 'zz'},${v})`]) {
                const found = await api.inject({ url: `/api/v1/machines?selector=${encodeURIComponent(selector)}`, headers: operator });
                assert.equal(found.statusCode, 200, `${selector}: ${found.body.slice(0, 200)}`);
                assert.deepEqual(found.json().items.map((m: { service_tag: string }) => m.service_tag), ['LABEL1'], selector);
              }
              const without = await api.inject({ url: `/api/v1/machines?selector=${encodeURIComponent(`!${k}`)}`, headers: operator });
              assert.equal(without.json().total, 0, `!${k}`);
            }
          } else {
            assert.equal(r.statusCode, 400, `${JSON.stringify(labels)}: ${r.statusCode}`);
            assert.equal(typeof r.json().error?.message, 'string');
            assert.deepEqual(now, stored, 'a refused map changed nothing');
          }
        }),
        { seed: 0x1abe_1001, numRuns: runs(kind.name === 'sqlite' ? 200 : 80) },
      );
    });
  });
}
