import { buildApiServer } from '../../src/server/roles.ts';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext, sqlOf } from '../support/context.ts';

/**
 * Connections the storm's client opens at most. A thousand connects at once overflow the listen
 * backlog (511) on a loaded machine, and a dropped SYN is retried only after seconds: the client
 * would then measure the kernel, not the server. Requests beyond this wait in the agent's queue, so
 * the server still gets a storm of 200 requests at a time, on kept-alive connections.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 200 });

/** POSTs one enrollment over real HTTP; returns the status code. */
function enroll(base: string, body: unknown): Promise<number> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(`${base}/api/v1/enroll`, { method: 'POST', agent, timeout: 60_000, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error('enrollment request: no answer within 60 s')));
    req.once('error', reject);
    req.end(payload);
  });
}

function macFor(i: number): string {
  const hex = i.toString(16).padStart(6, '0');
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

for (const kind of await testDatabaseKinds()) {
  describe(`enrollment storms over HTTP on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let base: string;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      app = await buildApiServer(t.ctx);
      base = await app.listen({ host: '127.0.0.1', port: 0 });
    });
    after(async () => {
      agent.destroy();
      await app.close();
      await t.close();
    });

    test('1,000 concurrent enrollments of distinct tags: all stored, no 5xx, none duplicated', async () => {
      const statuses = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => enroll(base, enrollmentPayload(`STORM${i}`, { mac_address: macFor(i) }))),
      );
      assert.deepEqual(
        statuses.filter((s) => s !== 201),
        [],
        'every new machine answered 201',
      );
      const rows = await sqlOf(t.ctx)
        .selectFrom('machines')
        .select(['service_tag'])
        .where('service_tag', 'like', 'STORM%')
        .execute();
      assert.equal(rows.length, 1000);
      assert.equal(new Set(rows.map((r) => r.service_tag)).size, 1000);
      const events = await t.ctx.storage.events.list({ kind: 'machine.enrolled', limit: 1 });
      assert.equal(events.total, 1000, 'one enrollment event each');
    });

    test('the same tag enrolled 100 times at once: exactly one machine', async () => {
      const statuses = await Promise.all(Array.from({ length: 100 }, () => enroll(base, enrollmentPayload('SAMETAG1'))));
      assert.equal(statuses.filter((s) => s === 201).length, 1, 'exactly one 201');
      assert.equal(statuses.filter((s) => s === 200).length, 99, 'the rest 200');
      const rows = await sqlOf(t.ctx).selectFrom('machines').select('id').where('service_tag', '=', 'SAMETAG1').execute();
      assert.equal(rows.length, 1);
    });
  });
}
