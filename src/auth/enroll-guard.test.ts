import { buildApiServer, buildBootServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import { ENROLL_TOKEN_HEADER } from './enroll-guard.ts';

const ENROLL_TOKEN = 'enroll-secret-0123456789';

async function machineCount(t: TestContext): Promise<number> {
  return (await t.ctx.machines.list({ limit: 1, offset: 0 })).total;
}

for (const kind of await testDatabaseKinds()) {
  describe(`enrollment limits on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '3', METAL_TRUST_PROXY: '127.0.0.1' });
      app = await buildApiServer(t.ctx);
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    const enroll = (tag: string, remoteAddress: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag), remoteAddress, headers });

    test('METAL_ENROLL_RATE per source address: the next one gets 429 with Retry-After and is not stored', async () => {
      for (let i = 0; i < 3; i++) assert.equal((await enroll(`RATE${i}`, '10.0.0.1')).statusCode, 201);
      const before = await machineCount(t);
      const limited = await enroll('RATE9', '10.0.0.1');
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json().error.code, 'rate_limited');
      assert.match(limited.json().error.message, /at most 3 per minute \(METAL_ENROLL_RATE\)/);
      const retryAfter = Number(limited.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${limited.headers['retry-after']}`);
      assert.equal(await machineCount(t), before);
      assert.equal((await enroll('RATE10', '10.0.0.2')).statusCode, 201, 'another address is not limited');
    });

    test('behind a trusted proxy the forwarded address counts', async () => {
      for (let i = 0; i < 3; i++) assert.equal((await enroll(`FWD${i}`, '127.0.0.1', { 'x-forwarded-for': '192.0.2.7' })).statusCode, 201);
      assert.equal((await enroll('FWD9', '127.0.0.1', { 'x-forwarded-for': '192.0.2.7' })).statusCode, 429);
      assert.equal((await enroll('FWD10', '127.0.0.1', { 'x-forwarded-for': '192.0.2.8' })).statusCode, 201);
    });

    test('an untrusted peer cannot dodge the limit with X-Forwarded-For', async () => {
      for (let i = 0; i < 3; i++) await enroll(`SPOOF${i}`, '10.0.0.50', { 'x-forwarded-for': `192.0.2.${100 + i}` });
      assert.equal((await enroll('SPOOF9', '10.0.0.50', { 'x-forwarded-for': '192.0.2.200' })).statusCode, 429);
    });
  });

  describe(`METAL_ENROLL_TOKEN on ${kind.name}`, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_TOKEN: ENROLL_TOKEN, METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    });
    after(async () => {
      await api.close();
      await boot.close();
      await t.close();
    });

    test('without the header or with a wrong token: 401 on both listeners, nothing stored', async () => {
      for (const app of [api, boot]) {
        const missing = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('TOK1') });
        assert.equal(missing.statusCode, 401);
        assert.deepEqual(missing.json(), { error: { code: 'unauthorized', message: `enrollment needs the ${ENROLL_TOKEN_HEADER} header (METAL_ENROLL_TOKEN is set)` } });
        for (const wrong of ['enroll-secret-012345678', `${ENROLL_TOKEN}x`, 'x']) {
          const r = await app.inject({ method: 'POST', url: '/api/v1/enroll', headers: { [ENROLL_TOKEN_HEADER]: wrong }, payload: enrollmentPayload('TOK1') });
          assert.equal(r.statusCode, 401);
          assert.deepEqual(r.json(), { error: { code: 'unauthorized', message: 'wrong enrollment token' } });
        }
      }
      assert.equal(await machineCount(t), 0);
    });

    test('with the token: enrolled, on both listeners', async () => {
      const viaApi = await api.inject({ method: 'POST', url: '/api/v1/enroll', headers: { 'X-Metal-Enroll-Token': ENROLL_TOKEN }, payload: enrollmentPayload('TOK1') });
      assert.equal(viaApi.statusCode, 201);
      const viaBoot = await boot.inject({ method: 'POST', url: '/api/v1/enroll', headers: { 'X-Metal-Enroll-Token': ENROLL_TOKEN }, payload: enrollmentPayload('TOK2') });
      assert.equal(viaBoot.statusCode, 201);
      assert.equal(await machineCount(t), 2);
    });
  });
}
