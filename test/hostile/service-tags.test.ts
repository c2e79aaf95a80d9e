import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { enrollmentPayload, type TestContext } from '../support/context.ts';
import { startTestListeners, type TestListeners } from '../support/listeners.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileString, macFor, pct, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Generated service tags wherever a tag is taken: enrollment, the API, the dashboard, the boot
 * script path, the booted report, the audit trail filter. Never a 5xx; a refused request writes
 * nothing; an accepted tag reads back as itself.
 */

const admin = { 'x-test-role': 'admin' };
const operator = { 'x-test-role': 'operator' };

const tag = fc.oneof(hostileString(), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/), fc.stringMatching(/^\d{1,20}$/));

for (const kind of await testDatabaseKinds()) {
  describe(`hostile service tags on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let listeners: TestListeners;
    before(async () => {
      listeners = await startTestListeners(kind.fresh(), {}, { lastSeenIntervalMs: 60_000 });
      ({ t, api, boot } = listeners);
    });
    after(async () => listeners.close());

    test('enroll, read, edit, boot and report with any tag: no 5xx, nothing written when refused', async () => {
      await fc.assert(
        fc.asyncProperty(tag, async (value) => {
          const what = JSON.stringify(value.slice(0, 80));
          let before = await rowCounts(t.ctx);
          const enrolled = await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: JSON.stringify(enrollmentPayload(value, { mac_address: macFor(value) })), headers: { 'content-type': 'application/json' } });
          assert.ok(enrolled.statusCode < 500, `enroll ${what}: ${enrolled.statusCode} ${enrolled.body.slice(0, 200)}`);
          if (enrolled.statusCode >= 400) assert.deepEqual(await rowCounts(t.ctx), before, `enroll ${what} was refused but wrote rows`);
          else assert.equal(enrolled.json().service_tag, value);

          const path = pct(value);
          before = await rowCounts(t.ctx);
          for (const url of [`/api/v1/machines/${path}`, `/api/v1/machines/${path}/builds`, `/api/v1/machines/${path}/events`, `/api/v1/events?machine=${path}`, `/machines/${path}`]) {
            const r = await api.inject({ url, headers: admin });
            assert.ok(r.statusCode < 500, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          }
          for (const url of [`/nixos/machines/${path}.ipxe`, `/nixos/machines/${path}.ipxe?mac=${pct(macFor(value))}`]) {
            const r = await boot.inject({ url });
            assert.ok(r.statusCode < 500, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          }
          assert.deepEqual(await rowCounts(t.ctx), before, `reads of ${what} wrote rows`);

          for (const [app, method, url, payload, headers] of [
            [api, 'PUT', `/api/v1/machines/${path}`, { hostname: 'x'.repeat(64) }, operator],
            [boot, 'POST', `/api/v1/machines/${path}/booted`, { build_id: 1, token: 'x' }, {}],
            [api, 'POST', `/api/v1/machines/${path}/build`, undefined, operator],
          ] as const) {
            const r = await app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
            assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${method} ${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
          }
          assert.deepEqual(await rowCounts(t.ctx), before, `refused edits of ${what} wrote rows`);
        }),
        { seed: 0x7a65_0001, numRuns: runs(kind.name === 'sqlite' ? 60 : 25) },
      );
    });
  });
}
