import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { HARDWARE_LIMITS, MAX_BODY_DEPTH } from '../core/json-bounds.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { enrollmentPayload, sqlOf, type TestContext } from '../../test/support/context.ts';
import { startTestListeners, type TestListeners } from '../../test/support/listeners.ts';

const viewer = { 'x-test-role': 'viewer' };

/** Rows in the tables an enrollment writes. */
async function rowCounts(t: TestContext): Promise<{ machines: number; events: number }> {
  const db = sqlOf(t.ctx);
  const machines = await db.selectFrom('machines').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const events = await db.selectFrom('events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { machines: Number(machines.n), events: Number(events.n) };
}

/** `{"x":{"x":…1…}}` nested `depth` levels, as text (JSON.stringify could not build it). */
function nested(depth: number): string {
  return '{"x":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** An enrollment body whose hardware carries `extra` (raw JSON) under the key `nest`. */
function withRawField(tag: string, key: string, rawJson: string): string {
  const base = JSON.stringify(enrollmentPayload(tag));
  return base.replace('"hardware":{', `"hardware":{${JSON.stringify(key)}:${rawJson},`);
}

/** The amplification payload of the report: ~178 KB, nested 3,000 deep, 80,000 items in hardware. */
function amplificationPayload(tag: string): string {
  const items = `[${Array.from({ length: 80_000 }, () => '0').join(',')}]`;
  return withRawField(tag, 'deep', nested(3000)).replace('"hardware":{', `"hardware":{"many":${items},`);
}

/** The largest document the limits allow: 16 levels, a 1,024-item array, 4 KiB strings, ~250 KiB. */
function maximalHardware(): Record<string, unknown> {
  let deep: unknown = 'bottom';
  for (let i = 0; i < HARDWARE_LIMITS.depth - 1; i++) deep = { level: deep };
  const disks = Array.from({ length: HARDWARE_LIMITS.arrayItems }, (_, i) => ({
    name: `sd${i}`,
    size_bytes: 1_000_000_000,
    model: `<b>MODEL</b>-${'m'.repeat(135)}`,
    serial: `S${i}`,
    rotational: false,
  }));
  const hardware = { manufacturer: 'Dell Inc.', model: 'PowerEdge R740', disks, deep, notes: 'n'.repeat(HARDWARE_LIMITS.stringBytes), more: 'z'.repeat(4000) };
  const size = Buffer.byteLength(JSON.stringify(hardware));
  assert.ok(size <= HARDWARE_LIMITS.totalBytes && size > 200 * 1024, `maximal document is ${size} bytes`);
  return hardware;
}

for (const kind of await testDatabaseKinds()) {
  describe(`hardware bounds at enrollment on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let listeners: TestListeners;
    before(async () => {
      listeners = await startTestListeners(kind.fresh());
      ({ t, api, boot } = listeners);
    });
    after(async () => listeners.close());

    const post = (app: FastifyInstance, payload: string | object) =>
      app.inject({ method: 'POST', url: '/api/v1/enroll', payload, headers: { 'content-type': 'application/json' } });

    test('the amplification payload of the report (3,000 deep, 80,000 items) is refused and writes nothing', async () => {
      const body = amplificationPayload('AMP1');
      assert.ok(body.length > 170_000 && body.length < 200_000, `payload is ${body.length} bytes`);
      const before = await rowCounts(t);
      for (const app of [api, boot]) {
        const r = await post(app, body);
        assert.equal(r.statusCode, 400, r.body);
        assert.equal(r.json().error.code, 'invalid_input');
        assert.match(r.json().error.message, /levels/);
      }
      assert.deepEqual(await rowCounts(t), before);
    });

    test('JSON nested 4,100 and 50,000 levels is a 400 naming the depth limit, not a 500 (stack overflow)', async () => {
      const before = await rowCounts(t);
      for (const depth of [4100, 50_000]) {
        for (const app of [api, boot]) {
          const r = await post(app, withRawField('DEEP1', 'nest', nested(depth)));
          assert.equal(r.statusCode, 400, r.body);
          assert.equal(r.json().error.code, 'invalid_input');
          assert.match(r.json().error.message, new RegExp(`deeper than ${MAX_BODY_DEPTH} levels \\(at body\\.hardware\\.nest\\.x`));
          assert.equal(r.json().error.details.limit, 'depth');
        }
      }
      // The same at the top of a body of any other route: the check is on every listener and route.
      const r = await api.inject({ method: 'PUT', url: '/api/v1/machines/NOPE', payload: nested(10_000), headers: { 'content-type': 'application/json', 'x-test-role': 'operator' } });
      assert.equal(r.statusCode, 400, r.body);
      assert.deepEqual(await rowCounts(t), before);
    });

    test('each hardware limit: a 400/413 naming the limit and the path, nothing written', async () => {
      const before = await rowCounts(t);
      let deep17: unknown = 1;
      for (let i = 0; i < HARDWARE_LIMITS.depth; i++) deep17 = { d: deep17 };
      const cases: Array<{ name: string; hardware: unknown; status: number; limit: string; path: string; message: RegExp }> = [
        { name: 'depth 17', hardware: { a: deep17 }, status: 400, limit: 'depth', path: 'hardware.a.d.d', message: /nested more than 16 levels deep/ },
        { name: '1,025 disks', hardware: { disks: Array.from({ length: 1025 }, () => ({})) }, status: 400, limit: 'array_items', path: 'hardware.disks', message: /hardware\.disks has 1025 items; at most 1024/ },
        { name: '1,025 items in an unknown field', hardware: { sensors: { list: Array(1025).fill(0) } }, status: 400, limit: 'array_items', path: 'hardware.sensors.list', message: /at most 1024/ },
        { name: 'a 4 KiB + 1 string', hardware: { bios: { notes: 'x'.repeat(4097) } }, status: 400, limit: 'string_bytes', path: 'hardware.bios.notes', message: /4097 bytes; at most 4096/ },
        { name: 'a 4 KiB string in multi-byte characters', hardware: { nics: [{ alias: 'é'.repeat(2049) }] }, status: 400, limit: 'string_bytes', path: 'hardware.nics[0].alias', message: /4098 bytes/ },
        { name: 'a 5 KiB key', hardware: { ['k'.repeat(5000)]: 1 }, status: 400, limit: 'string_bytes', path: 'hardware', message: /at most 4096 bytes/ },
        {
          name: '300 KiB in small strings',
          hardware: { chunks: Array.from({ length: 100 }, () => 'c'.repeat(3000)) },
          status: 413,
          limit: 'total_bytes',
          path: 'hardware',
          message: /hardware is \d+ bytes as JSON; at most 262144 bytes/,
        },
      ];
      for (const c of cases) {
        const r = await post(api, enrollmentPayload('LIMIT1', { hardware: c.hardware }));
        assert.equal(r.statusCode, c.status, `${c.name}: ${r.body.slice(0, 300)}`);
        const error = r.json().error;
        assert.equal(error.code, c.status === 413 ? 'payload_too_large' : 'invalid_input', c.name);
        assert.match(error.message, c.message, c.name);
        assert.equal(error.details.limit, c.limit, c.name);
        assert.ok(String(error.details.path).startsWith(c.path), `${c.name}: path ${error.details.path}`);
      }
      assert.deepEqual(await rowCounts(t), before);
    });

    test('a maximal allowed document enrolls, and the machine page it makes stays small', async () => {
      const hardware = maximalHardware();
      const r = await post(api, enrollmentPayload('MAXHW1', { hardware }));
      assert.equal(r.statusCode, 201, r.body.slice(0, 300));
      const small = await post(api, enrollmentPayload('SMALLHW1'));
      assert.equal(small.statusCode, 201);

      const page = await api.inject({ url: '/machines/MAXHW1', headers: viewer });
      assert.equal(page.statusCode, 200);
      const baseline = await api.inject({ url: '/machines/SMALLHW1', headers: viewer });
      const extra = page.body.length - baseline.body.length;
      // 64 rows of 5 cells cut at 128 characters, 8 KiB of raw fields, the facts: well under 64 KiB.
      assert.ok(extra < 64 * 1024, `the maximal document adds ${extra} bytes to the page`);
      assert.match(page.body, /960 more not shown/);
      assert.match(page.body, /cut at 8192 characters/);
      assert.ok(!page.body.includes('<b>MODEL</b>'), 'reported text is escaped');
      assert.ok(page.body.includes('&lt;b&gt;MODEL&lt;/b&gt;'));

      const list = await api.inject({ url: '/machines', headers: viewer });
      assert.equal(list.statusCode, 200);
      assert.ok(list.body.length < 256 * 1024, `the list page is ${list.body.length} bytes`);
      // The API still returns the whole document.
      const json = await api.inject({ url: '/api/v1/machines/MAXHW1', headers: viewer });
      assert.equal(json.statusCode, 200);
      assert.equal(json.json().hardware.disks.length, HARDWARE_LIMITS.arrayItems);
    });
  });
}
