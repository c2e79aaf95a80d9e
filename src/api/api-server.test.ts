import { buildApiServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

const operator = { 'x-test-role': 'operator' };

for (const kind of await testDatabaseKinds()) {
  describe(`REST API v1 on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh());
      app = await buildApiServer(t.ctx);
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('enroll: 201 for a new machine, 200 for a known one, no configuration returned', async () => {
      const first = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('ABC123') });
      assert.equal(first.statusCode, 201);
      assert.deepEqual(Object.keys(first.json()).sort(), ['id', 'service_tag', 'status']);
      assert.equal(first.json().status, 'enrolled');
      const again = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('ABC123') });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().id, first.json().id);
    });

    test('get by id and by service tag', async () => {
      const byTag = await app.inject({ url: '/api/v1/machines/ABC123', headers: operator });
      assert.equal(byTag.statusCode, 200);
      const byId = await app.inject({ url: `/api/v1/machines/${byTag.json().id}`, headers: operator });
      assert.equal(byId.json().service_tag, 'ABC123');
      assert.equal(byId.json().hardware.model, 'PowerEdge R740');
      const missing = await app.inject({ url: '/api/v1/machines/NOPE', headers: operator });
      assert.equal(missing.statusCode, 404);
      assert.deepEqual(missing.json(), { error: { code: 'not_found', message: 'machine NOPE not found' } });
    });

    test('configure: hostname and configuration make an enrolled machine configured', async () => {
      const r1 = await app.inject({ method: 'PUT', url: '/api/v1/machines/ABC123', headers: operator, payload: { hostname: 'web-01' } });
      assert.equal(r1.statusCode, 200);
      assert.equal(r1.json().status, 'enrolled');
      const r2 = await app.inject({
        method: 'PUT',
        url: '/api/v1/machines/ABC123',
        headers: operator,
        payload: { nixos_config: '{ ... }: { services.openssh.enable = true; }' },
      });
      assert.equal(r2.json().status, 'configured');
      assert.equal(r2.json().hostname, 'web-01');
    });

    test('re-enrolling a configured machine changes only hardware and last_seen_at', async () => {
      const before = (await app.inject({ url: '/api/v1/machines/ABC123', headers: operator })).json();
      const payload = enrollmentPayload('ABC123');
      payload.hardware.model = 'PowerEdge R750';
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload });
      const after = (await app.inject({ url: '/api/v1/machines/ABC123', headers: operator })).json();
      assert.equal(after.hardware.model, 'PowerEdge R750');
      for (const key of ['hostname', 'nixos_config', 'status', 'description', 'enrolled_at', 'last_build_id']) {
        assert.deepEqual(after[key], before[key], key);
      }
      assert.ok(after.last_seen_at >= before.last_seen_at);
    });

    test('build: 202 pending, machine building, 409 for a second, 422 without hostname', async () => {
      const r = await app.inject({ method: 'POST', url: '/api/v1/machines/ABC123/build', headers: operator });
      assert.equal(r.statusCode, 202);
      assert.equal(r.json().status, 'pending');
      assert.equal(r.json().hostname, 'web-01');
      assert.equal('boot_token' in r.json(), false);
      const m = (await app.inject({ url: '/api/v1/machines/ABC123', headers: operator })).json();
      assert.equal(m.status, 'building');
      assert.equal(m.last_build_id, r.json().id);
      const again = await app.inject({ method: 'POST', url: '/api/v1/machines/ABC123/build', headers: operator });
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().error.code, 'conflict');

      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('NOHOST1') });
      const noHost = await app.inject({ method: 'POST', url: '/api/v1/machines/NOHOST1/build', headers: operator });
      assert.equal(noHost.statusCode, 422);
      assert.equal(noHost.json().error.code, 'unprocessable');

      const builds = (await app.inject({ url: '/api/v1/machines/ABC123/builds', headers: operator })).json();
      assert.equal(builds.total, 1);
      const build = (await app.inject({ url: `/api/v1/builds/${r.json().id}`, headers: operator })).json();
      assert.equal(build.machine_id, m.id);
    });

    test('cancel a pending build: cancelled, machine back to configured', async () => {
      const m = (await app.inject({ url: '/api/v1/machines/ABC123', headers: operator })).json();
      const r = await app.inject({ method: 'POST', url: `/api/v1/builds/${m.last_build_id}/cancel`, headers: operator });
      assert.equal(r.statusCode, 200);
      assert.equal(r.json().status, 'cancelled');
      const after = (await app.inject({ url: '/api/v1/machines/ABC123', headers: operator })).json();
      assert.equal(after.status, 'configured');
      const twice = await app.inject({ method: 'POST', url: `/api/v1/builds/${m.last_build_id}/cancel`, headers: operator });
      assert.equal(twice.statusCode, 409);
    });

    test('list: filters, search, paging and total', async () => {
      for (let i = 0; i < 5; i++) {
        await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(`LIST${i}`, { mac_address: `52:54:00:00:00:0${i}` }) });
      }
      const all = (await app.inject({ url: '/api/v1/machines?limit=2&offset=1', headers: operator })).json();
      assert.equal(all.items.length, 2);
      assert.equal(all.total, 7);
      const configured = (await app.inject({ url: '/api/v1/machines?status=configured', headers: operator })).json();
      assert.deepEqual(configured.items.map((m: { service_tag: string }) => m.service_tag), ['ABC123']);
      const search = (await app.inject({ url: '/api/v1/machines?search=list', headers: operator })).json();
      assert.equal(search.total, 5);
      const byMac = (await app.inject({ url: '/api/v1/machines?search=52:54:00:00:00:03', headers: operator })).json();
      assert.deepEqual(byMac.items.map((m: { service_tag: string }) => m.service_tag), ['LIST3']);
      const wildcard = (await app.inject({ url: '/api/v1/machines?search=%25', headers: operator })).json();
      assert.equal(wildcard.total, 0, 'a % in the search is a literal character');
      const bad = await app.inject({ url: '/api/v1/machines?limit=501', headers: operator });
      assert.equal(bad.statusCode, 400);
    });

    test('labels: PUT replaces the map, ?selector= filters, bad labels and selectors are 400 and change nothing', async () => {
      const put = (tag: string, payload: Record<string, unknown>) => app.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: operator, payload });
      assert.equal((await put('LIST0', { labels: { role: 'web', rack: 'r12' } })).statusCode, 200);
      assert.equal((await put('LIST1', { labels: { role: 'web', rack: 'r13' } })).statusCode, 200);
      const list1 = await put('LIST2', { labels: { role: 'db', rack: 'r12' } });
      assert.deepEqual(list1.json().labels, { rack: 'r12', role: 'db' });
      const pick = async (selector: string) => {
        const r = await app.inject({ url: `/api/v1/machines?selector=${encodeURIComponent(selector)}&sort=service_tag`, headers: operator });
        assert.equal(r.statusCode, 200, r.body);
        return r.json().items.map((m: { service_tag: string }) => m.service_tag);
      };
      assert.deepEqual(await pick('role=web'), ['LIST0', 'LIST1']);
      assert.deepEqual(await pick('rack=r12,role!=web'), ['LIST2']);
      for (const selector of ['role=', 'role in web', 'Bad Key', 'role=web,,']) {
        if (selector === 'role=') continue;
        const r = await app.inject({ url: `/api/v1/machines?selector=${encodeURIComponent(selector)}`, headers: operator });
        assert.equal(r.statusCode, 400, selector);
        assert.equal(r.json().error.code, 'invalid_input');
        assert.match(r.json().error.message, /selector/);
      }
      for (const labels of [{ 'bad key': 'x' }, { role: 'a b' }, ['role'], { role: 1 }] as unknown[]) {
        const r = await put('LIST0', { labels, hostname: 'changed-by-a-refused-request' });
        assert.equal(r.statusCode, 400, JSON.stringify(labels));
      }
      const after = (await app.inject({ url: '/api/v1/machines/LIST0', headers: operator })).json();
      assert.deepEqual([after.labels, after.hostname], [{ rack: 'r12', role: 'web' }, null], 'a refused update changes nothing');
      const events = (await app.inject({ url: '/api/v1/machines/LIST0/events', headers: operator })).json();
      assert.match(events.items[0].message, /changed labels/);
    });

    test('events: every change is recorded with its actor, newest first', async () => {
      const events = (await app.inject({ url: '/api/v1/machines/ABC123/events', headers: operator })).json();
      const kinds = events.items.map((e: { kind: string }) => e.kind);
      assert.deepEqual(kinds, ['build.cancelled', 'build.requested', 'machine.reenrolled', 'machine.updated', 'machine.updated', 'machine.reenrolled', 'machine.enrolled']);
      assert.equal(events.items[0].actor, 'user:test-operator');
      assert.equal(events.items.at(-1).actor, 'machine:ABC123');
    });

    test('delete: 204, then 404', async () => {
      const r = await app.inject({ method: 'DELETE', url: '/api/v1/machines/LIST0', headers: operator });
      assert.equal(r.statusCode, 204);
      assert.equal((await app.inject({ url: '/api/v1/machines/LIST0', headers: operator })).statusCode, 404);
    });

    test('the OpenAPI document lists every v1 route', async () => {
      const doc = (await app.inject({ url: '/api/v1/openapi.json' })).json();
      for (const path of ['/api/v1/enroll', '/api/v1/machines', '/api/v1/machines/{id}', '/api/v1/machines/{id}/build', '/api/v1/builds/{id}']) {
        assert.ok(doc.paths[path], path);
      }
      const schemas = doc.components.schemas;
      const files = schemas.Machine.properties.nixos_files;
      assert.deepEqual([files.type, files.nullable, files.additionalProperties.type, files.maxProperties], ['object', true, 'string', 64]);
      assert.equal(schemas.Build.properties.config_files.type, 'object');
      assert.equal(schemas.Build.properties.nixpkgs.nullable, true);
      assert.deepEqual(Object.keys(schemas.Build.properties.nixpkgs.properties), ['version', 'revision', 'source', 'sha256']);
      const put = doc.paths['/api/v1/machines/{id}'].put.requestBody.content['application/json'].schema;
      assert.ok(put.properties.nixos_files, 'PUT takes nixos_files');
    });

    test('nixos_files: the whole map, read back on the machine and on its next build; nixos_config alone makes it one file', async () => {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('FILES1', { mac_address: '52:54:00:00:0f:01' }) });
      const files = { 'hardware.nix': '{ ... }: { }\n', 'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ]; }\n' };
      const put = await app.inject({ method: 'PUT', url: '/api/v1/machines/FILES1', headers: operator, payload: { hostname: 'files-1', nixos_files: files } });
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(Object.keys(put.json().nixos_files), ['configuration.nix', 'hardware.nix'], 'the entry first');
      assert.equal(put.json().nixos_config, files['configuration.nix']);
      assert.equal(put.json().status, 'configured');
      const events = (await app.inject({ url: '/api/v1/machines/FILES1/events', headers: operator })).json();
      assert.equal(events.items[0].message, 'changed hostname, nixos_config, nixos_files');
      const build = await app.inject({ method: 'POST', url: '/api/v1/machines/FILES1/build', headers: operator });
      assert.deepEqual(build.json().config_files, files);
      assert.equal(build.json().config, files['configuration.nix']);
      assert.equal(build.json().nixpkgs, null);
      await app.inject({ method: 'POST', url: `/api/v1/builds/${build.json().id}/cancel`, headers: operator });
      const same = await app.inject({ method: 'PUT', url: '/api/v1/machines/FILES1', headers: operator, payload: { nixos_config: files['configuration.nix'], nixos_files: files } });
      assert.equal(same.statusCode, 200, 'both fields may be sent when they agree');
      const one = await app.inject({ method: 'PUT', url: '/api/v1/machines/FILES1', headers: operator, payload: { nixos_config: '{ ... }: { }' } });
      assert.deepEqual(one.json().nixos_files, { 'configuration.nix': '{ ... }: { }' });
      const cleared = await app.inject({ method: 'PUT', url: '/api/v1/machines/FILES1', headers: operator, payload: { nixos_files: null } });
      assert.deepEqual([cleared.json().nixos_config, cleared.json().nixos_files], [null, null]);
    });
  });
}

describe('GET /metrics', () => {
  test('is public and counts machines by status', async () => {
    const { freshSqlite } = await import('../../test/support/databases.ts');
    const t = await createTestContext(freshSqlite());
    const app = await buildApiServer(t.ctx);
    try {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('METRICS1') });
      const r = await app.inject({ url: '/metrics' });
      assert.equal(r.statusCode, 200);
      assert.match(r.body, /^metal_machines\{status="enrolled"\} 1$/m);
      assert.match(r.body, /^metal_process_cpu_seconds_total /m);
    } finally {
      await app.close();
      await t.close();
    }
  });
});
