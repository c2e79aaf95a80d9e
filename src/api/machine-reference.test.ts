import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../server/roles.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

const viewer = { 'x-test-role': 'viewer' };

// A numeric service tag must never be shadowed by a machine id, nor an id by a tag.
for (const kind of await testDatabaseKinds()) {
  describe(`machine references on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    const ids: Record<string, number> = {};
    before(async () => {
      t = await createTestContext(kind.fresh());
      app = await buildApiServer(t.ctx);
      for (const tag of ['FIRST1', '001', '10', '78', 'F5', 'F6', 'F7', 'F8', 'F9', 'F10']) {
        const r = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) });
        assert.equal(r.statusCode, 201, r.body);
        ids[tag] = r.json().id;
      }
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    const tagOf = async (ref: string) => {
      const r = await app.inject({ url: `/api/v1/machines/${encodeURIComponent(ref)}`, headers: viewer });
      return { status: r.statusCode, tag: r.statusCode === 200 ? r.json().service_tag : undefined, body: r.json() };
    };

    test('001 is the machine tagged 001, not machine 1', async () => {
      assert.equal(ids.FIRST1, 1);
      assert.equal((await tagOf('001')).tag, '001');
    });

    test('id:N is always an id and tag:X always a tag', async () => {
      assert.equal((await tagOf('id:1')).tag, 'FIRST1');
      assert.equal((await tagOf('id:10')).tag, 'F10');
      assert.equal((await tagOf('tag:10')).tag, '10');
      assert.equal((await tagOf(`id:${ids['78']}`)).tag, '78');
      assert.equal((await tagOf('tag:78')).tag, '78');
      assert.equal((await tagOf('id:999')).status, 404);
      assert.equal((await tagOf('id:x')).status, 404);
    });

    test('a plain number that is one machine’s id and another’s tag is a 409 naming both ways out', async () => {
      assert.equal(ids.F10, 10);
      const r = await tagOf('10');
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'conflict');
      assert.match(r.body.error.message, /id:10 or tag:10/);
      const put = await app.inject({ method: 'PUT', url: '/api/v1/machines/10', headers: { 'x-test-role': 'operator' }, payload: { hostname: 'x-01' } });
      assert.equal(put.statusCode, 409, 'an ambiguous reference changes nothing');
      assert.equal((await tagOf('id:10')).body.hostname, null);
      assert.equal((await tagOf('tag:10')).body.hostname, null);
    });

    test('a plain number that is only an id, or only a tag, still works', async () => {
      assert.equal((await tagOf('2')).tag, '001', 'no machine has the tag 2');
      assert.equal((await tagOf('78')).tag, '78', 'no machine has id 78');
    });

    test('the dashboard links a numeric tag unambiguously', async () => {
      const page = await app.inject({ url: '/machines/tag:10', headers: viewer });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /hx-get="\/machines\/tag%3A10\?fragment=live"/);
    });
  });
}
