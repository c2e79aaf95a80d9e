import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { hostileString, pct, runs } from '../support/hostile.ts';

/**
 * `GET /boot/image-key/<key>` (what nginx in front asks before it sends an image file): whatever the
 * key, the answer is 403 without a build id unless a published build has exactly that key; never a
 * 5xx, never a header an attacker chose.
 */
describe('the image key check with generated keys', () => {
  let t: TestContext;
  let boot: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite());
    boot = await buildBootServer(t.ctx, { registrationTtlMs: 0, lastSeenIntervalMs: 60_000 });
  });
  after(async () => {
    await boot.close();
    await t.close();
  });

  test('any key nobody published is refused', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileString(200), fc.stringMatching(/^[A-Za-z0-9_-]{22,64}$/)), async (key) => {
        const res = await boot.inject({ url: `/boot/image-key/${pct(key)}` });
        assert.ok(res.statusCode === 403 || res.statusCode === 404 || res.statusCode === 400, `${JSON.stringify(key)}: ${res.statusCode} ${res.body}`);
        assert.equal(res.headers['x-metal-build-id'], undefined, JSON.stringify(key));
      }),
      { seed: 0x1b0e_0101, numRuns: runs(500) },
    );
  });
});
