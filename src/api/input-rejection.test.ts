import { buildApiServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext, sqlOf } from '../../test/support/context.ts';

const operator = { 'x-test-role': 'operator' };

interface Case {
  name: string;
  method?: 'POST' | 'PUT';
  url?: string;
  headers?: Record<string, string>;
  payload: string | object;
  status: number;
  code: string;
}

const enrollCases: Case[] = [
  { name: 'malformed JSON', payload: '{"service_tag": "ABC', status: 400, code: 'invalid_input' },
  { name: 'a JSON array', payload: '[1,2]', status: 400, code: 'invalid_input' },
  { name: 'service_tag is a number', payload: { ...enrollmentPayload('X'), service_tag: 12 }, status: 400, code: 'invalid_input' },
  { name: 'hardware is a string', payload: { ...enrollmentPayload('GOOD1'), hardware: 'dell' }, status: 400, code: 'invalid_input' },
  { name: 'cpu.cores is a string', payload: enrollmentPayload('GOOD1', { hardware: { cpu: { cores: 'two' } } }), status: 400, code: 'invalid_input' },
  { name: 'a NIC\'s lldp is a string', payload: enrollmentPayload('GOOD1', { hardware: { nics: [{ name: 'eno1', lldp: 'leaf-r12-a' }] } }), status: 400, code: 'invalid_input' },
  { name: 'an LLDP vlan_id of 4095', payload: enrollmentPayload('GOOD1', { hardware: { nics: [{ name: 'eno1', lldp: { system_name: 'leaf', vlan_id: 4095 } }] } }), status: 400, code: 'invalid_input' },
  { name: 'an LLDP system name of 257 characters', payload: enrollmentPayload('GOOD1', { hardware: { nics: [{ name: 'eno1', lldp: { system_name: 'x'.repeat(257) } }] } }), status: 400, code: 'invalid_input' },
  { name: 'missing mac_address', payload: { service_tag: 'GOOD1', hardware: {} }, status: 400, code: 'invalid_input' },
  { name: 'an unknown top-level field', payload: { ...enrollmentPayload('GOOD1'), status: 'ready' }, status: 400, code: 'invalid_input' },
  { name: 'a 2 MiB body', payload: { ...enrollmentPayload('GOOD1'), hardware: { notes: 'x'.repeat(2 * 1024 * 1024) } }, status: 413, code: 'payload_too_large' },
  { name: 'text/plain body', headers: { 'content-type': 'text/plain' }, payload: 'hello', status: 415, code: 'unsupported_media_type' },
  ...['../../etc', 'a b', 'A'.repeat(65), 'Ünïcode', 'ABC\n123', '', '-lead', '.hidden', 'ABC;reboot', '${serial}'].map((tag) => ({
    name: `service tag ${JSON.stringify(tag)}`,
    payload: enrollmentPayload(tag),
    status: 400,
    code: 'invalid_input',
  })),
  ...['To Be Filled By O.E.M.', '0', 'None', '00000000', '03000200-0400-0500-0006-000700080009', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'].map((tag) => ({
    name: `placeholder serial ${JSON.stringify(tag)}`,
    payload: enrollmentPayload(tag),
    status: 400,
    code: 'invalid_input',
  })),
  ...['52:54:00:12:34', '52-54-00-12-34-56', 'zz:54:00:12:34:56', '52:54:00:12:34:56\n', ''].map((mac) => ({
    name: `MAC ${JSON.stringify(mac)}`,
    payload: enrollmentPayload('GOOD1', { mac_address: mac }),
    status: 400,
    code: 'invalid_input',
  })),
];

const updateCases: Case[] = [
  ...['-web', 'web_01', 'a'.repeat(64), 'web 01', 'web.example.com', '', 'wéb'].map((hostname) => ({
    name: `hostname ${JSON.stringify(hostname)}`,
    method: 'PUT' as const,
    url: '/api/v1/machines/KNOWN1',
    headers: operator,
    payload: { hostname },
    status: 400,
    code: 'invalid_input',
  })),
  { name: 'a 300 KiB configuration', method: 'PUT', url: '/api/v1/machines/KNOWN1', headers: operator, payload: { nixos_config: 'x'.repeat(300 * 1024) }, status: 400, code: 'invalid_input' },
  { name: 'an unknown field', method: 'PUT', url: '/api/v1/machines/KNOWN1', headers: operator, payload: { status: 'ready' }, status: 400, code: 'invalid_input' },
  { name: 'an empty update', method: 'PUT', url: '/api/v1/machines/KNOWN1', headers: operator, payload: {}, status: 400, code: 'invalid_input' },
  { name: 'hostname and a bad configuration together', method: 'PUT', url: '/api/v1/machines/KNOWN1', headers: operator, payload: { hostname: 'ok-name', nixos_config: 'a\u0000b' }, status: 400, code: 'invalid_input' },
];

for (const kind of await testDatabaseKinds()) {
  describe(`rejected input changes nothing, on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      app = await buildApiServer(t.ctx);
      const r = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('KNOWN1') });
      assert.equal(r.statusCode, 201);
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    /** Everything a rejected request could have written. */
    async function snapshot() {
      const db = sqlOf(t.ctx);
      return {
        machines: await db.selectFrom('machines').selectAll().orderBy('id').execute(),
        builds: await db.selectFrom('builds').selectAll().orderBy('id').execute(),
        events: await db.selectFrom('events').selectAll().orderBy('id').execute(),
      };
    }

    test('a path or query number that is not finite ("Infinity", "1e400") is a 400, not a database error', async () => {
      const before = await snapshot();
      for (const [method, url] of [
        ['GET', '/api/v1/builds/Infinity'],
        ['GET', '/api/v1/builds/1e400'],
        ['POST', '/api/v1/builds/Infinity/cancel'],
        ['GET', '/api/v1/machines?limit=Infinity'],
        ['GET', '/api/v1/machines/KNOWN1/builds?offset=1e400'],
      ] as const) {
        const r = await app.inject({ method, url, headers: operator });
        assert.equal(r.statusCode, 400, `${method} ${url}: ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_input', url);
      }
      assert.deepEqual(await snapshot(), before);
    });

    for (const c of [...enrollCases, ...updateCases]) {
      test(`${c.name}: ${c.status} ${c.code}, nothing written`, async () => {
        const before = await snapshot();
        const r = await app.inject({
          method: c.method ?? 'POST',
          url: c.url ?? '/api/v1/enroll',
          headers: { 'content-type': 'application/json', ...c.headers },
          payload: typeof c.payload === 'string' ? c.payload : JSON.stringify(c.payload),
        });
        assert.equal(r.statusCode, c.status, r.body);
        const body = r.json();
        assert.equal(body.error.code, c.code);
        assert.equal(typeof body.error.message, 'string');
        assert.ok(body.error.message.length > 0);
        assert.deepEqual(await snapshot(), before);
      });
    }
  });
}
