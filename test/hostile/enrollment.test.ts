import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { enrollmentPayload, type TestContext } from '../support/context.ts';
import { startTestListeners, type TestListeners } from '../support/listeners.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileHardware, hostileJson, hostileString, macFor, nestedJson, pct, runs, validTag } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Generated enrollment payloads against both listeners: never a 5xx, an error body that says what
 * was wrong, and no row written by a rejected request. An accepted machine's page renders bounded.
 */

const viewer = { 'x-test-role': 'viewer' };

/** A whole request body: a hostile variation of what the agent sends, or hostile JSON text. */
const enrollmentBody: fc.Arbitrary<{ tag: string; body: string; contentType: string }> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    tag: fc.oneof(validTag, hostileString()),
    mac: fc.oneof(fc.constant(undefined), hostileString(), fc.constantFrom('52:54:00:AB:CD:EF', '52-54-00-ab-cd-ef', '', 12)),
    hardware: hostileHardware(),
    extraKey: fc.option(fc.tuple(hostileString(20), hostileJson(2)), { nil: undefined }),
    drop: fc.option(fc.constantFrom('service_tag', 'mac_address', 'hardware'), { nil: undefined }),
  }).map(({ tag, mac, hardware, extraKey, drop }) => {
    const payload: Record<string, unknown> = { service_tag: tag, mac_address: mac ?? macFor(tag), hardware };
    if (extraKey) payload[extraKey[0]] = extraKey[1];
    if (drop) delete payload[drop];
    return { tag, body: JSON.stringify(payload), contentType: 'application/json' };
  }) },
  { weight: 2, arbitrary: fc.tuple(validTag, fc.constantFrom(60, 65, 100, 4100, 20_000), fc.constantFrom(['{"x":', '}'], ['[', ']'])).map(([tag, depth, [open, close]]) => ({
    tag,
    body: JSON.stringify(enrollmentPayload(tag, { mac_address: macFor(tag) })).replace('"hardware":{', `"hardware":{"nest":${nestedJson(depth, open, close)},`),
    contentType: 'application/json',
  })) },
  { weight: 1, arbitrary: fc.tuple(validTag, fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1')).map(([tag, body, contentType]) => ({ tag, body, contentType })) },
);

/** Counterexamples print short: a generated body can be megabytes. */
function short<T extends { body: string }>(x: T): T {
  return Object.assign(x, { [fc.toStringMethod]: () => `${JSON.stringify(x.body.slice(0, 300))}… (${x.body.length} characters)` });
}

function assertErrorBody(r: LightMyRequestResponse, what: string): void {
  const body = r.json() as { error?: { code?: unknown; message?: unknown } };
  assert.equal(typeof body.error?.code, 'string', `${what}: ${r.body.slice(0, 200)}`);
  assert.equal(typeof body.error?.message, 'string', `${what}: ${r.body.slice(0, 200)}`);
  assert.ok((body.error!.message as string).length > 0, what);
}

for (const kind of await testDatabaseKinds()) {
  describe(`hostile enrollments on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let listeners: TestListeners;
    before(async () => {
      listeners = await startTestListeners(kind.fresh());
      ({ t, api, boot } = listeners);
    });
    after(async () => listeners.close());

    test('generated payloads: no 5xx, a clear error, nothing written when refused', async () => {
      await fc.assert(
        fc.asyncProperty(enrollmentBody.map(short), fc.boolean(), async ({ tag, body, contentType }, viaBoot) => {
          const before = await rowCounts(t.ctx);
          const r = await (viaBoot ? boot : api).inject({ method: 'POST', url: '/api/v1/enroll', payload: body, headers: { 'content-type': contentType } });
          const what = `${viaBoot ? 'boot' : 'api'} ${body.slice(0, 160)}`;
          assert.ok(r.statusCode < 500, `${what}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          if (r.statusCode >= 400) {
            assertErrorBody(r, what);
            assert.deepEqual(await rowCounts(t.ctx), before, `${what}: a refused enrollment wrote rows`);
            return;
          }
          // Accepted: the machine reads back, and its pages render without error and bounded.
          const machine = await api.inject({ url: `/api/v1/machines/${pct(tag)}`, headers: viewer });
          assert.equal(machine.statusCode, 200, `${what}: read back ${machine.body.slice(0, 200)}`);
          const page = await api.inject({ url: `/machines/${pct(tag)}`, headers: viewer });
          assert.equal(page.statusCode, 200, `${what}: page ${page.body.slice(0, 200)}`);
          assert.ok(page.body.length < 256 * 1024, `${what}: the page is ${page.body.length} bytes`);
        }),
        { seed: 0x5eed_e001, numRuns: runs(kind.name === 'sqlite' ? 120 : 40) },
      );
      const list = await api.inject({ url: '/machines', headers: viewer });
      assert.equal(list.statusCode, 200);
      const overview = await api.inject({ url: '/', headers: viewer });
      assert.equal(overview.statusCode, 200);
    });
  });
}
