import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { macOfTag } from '../support/mac-of-tag.ts';
import { fleetCounts as rowCounts } from '../support/fleet-counts.ts';

// Zero-touch for a rack (issue 15): rules give new machines a profile, labels and a unique hostname
// at their first enrollment and queue exactly one build each; a profile edit marks exactly its
// machines out of date and one bulk build rebuilds them.

const operator = { 'x-test-role': 'operator' };

/** Three kinds of hardware, as the registration agent reports them. */
const KINDS = {
  web: { manufacturer: 'Dell Inc.', model: 'PowerEdge R650', cpu: { threads: 64 }, memory: { total_bytes: 256 * 2 ** 30 }, disks: [{ name: 'sda', size_bytes: 480e9 }] },
  db: { manufacturer: 'HPE', model: 'ProLiant DL380 Gen10', cpu: { threads: 96 }, memory: { total_bytes: 1024 * 2 ** 30 }, disks: [{ name: 'sda', size_bytes: 3.84e12 }, { name: 'sdb', size_bytes: 3.84e12 }] },
  gpu: { manufacturer: 'Supermicro', model: 'SYS-4029GP-TRT', cpu: { threads: 80 }, memory: { total_bytes: 512 * 2 ** 30 }, gpus: [{ vendor: 'NVIDIA', model: 'A100' }] },
} as const;
type Kind = keyof typeof KINDS;

function kindOf(i: number): Kind {
  return i % 3 === 0 ? 'web' : i % 3 === 1 ? 'db' : 'gpu';
}

async function enroll(base: string, tag: string, kind: Kind): Promise<number> {
  const body = enrollmentPayload(tag, { hardware: { ...KINDS[kind], serial: tag, nics: [{ name: 'eno1', mac: macOfTag(tag) }] } });
  const res = await fetch(`${base}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

for (const kind of await testDatabaseKinds()) {
  describe(`fleet rules and profiles on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let base: string;
    const call = async (method: string, url: string, payload?: unknown) => {
      const r = await app.inject({ method: method as 'GET', url, headers: operator, ...(payload === undefined ? {} : { payload: payload as object }) });
      return { status: r.statusCode, body: r.body ? r.json() : undefined };
    };
    const ok = async (method: string, url: string, payload?: unknown) => {
      const r = await call(method, url, payload);
      assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const all = async (query = '') => (await ok('GET', `/api/v1/machines?limit=500${query}`)).items as Array<Record<string, unknown> & { service_tag: string; hostname: string | null }>;

    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      app = await buildApiServer(t.ctx);
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      await ok('POST', '/api/v1/profiles', { name: 'web', nixos_config: '{ ... }: { services.nginx.enable = true; }', hostname_pattern: 'web-{n:03}' });
      await ok('POST', '/api/v1/profiles', { name: 'db', nixos_config: '{ ... }: { services.postgresql.enable = true; }', hostname_pattern: 'db-{n:02}' });
      await ok('POST', '/api/v1/profiles', { name: 'gpu', nixos_config: '{ ... }: { hardware.nvidia.open = true; }', auto_build: true });
      await ok('POST', '/api/v1/rules', { name: 'dell-web', priority: 10, match: { manufacturer: 'Dell*' }, set: { profile: 'web', labels: { role: 'web' } }, build: true });
      await ok('POST', '/api/v1/rules', { name: 'hpe-db', priority: 20, match: { model: 'ProLiant*', disk_count: { min: 2 } }, set: { profile: 'db', labels: { role: 'db' } }, build: true });
      // No build flag: the gpu profile's auto_build asks for it; the rule's pattern overrides none.
      await ok('POST', '/api/v1/rules', { name: 'gpu', priority: 30, match: { gpu: true }, set: { profile: 'gpu', labels: { role: 'gpu' }, hostname_pattern: 'gpu-{tag}' } });
      await ok('POST', '/api/v1/rules', { name: 'catch-all', priority: 1000, set: { labels: { role: 'unknown' } } });
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('200 machines of three kinds enroll at once: right profile and labels, unique hostnames with no gaps, one build each', async () => {
      const tags = Array.from({ length: 200 }, (_, i) => `RACK${String(i).padStart(3, '0')}`);
      const statuses = await Promise.all(tags.map((tag, i) => enroll(base, tag, kindOf(i))));
      assert.deepEqual(statuses.filter((s) => s !== 201), [], 'every enrollment answered 201');
      const machines = await all();
      assert.equal(machines.length, 200);
      const byTag = new Map(machines.map((m) => [m.service_tag, m]));
      for (const [i, tag] of tags.entries()) {
        const m = byTag.get(tag)!;
        const k = kindOf(i);
        assert.deepEqual([m.profile, m.labels, m.status], [k, { role: k }, 'building'], `${tag} (${k})`);
        if (k === 'gpu') assert.equal(m.hostname, `gpu-${tag.toLowerCase()}`);
        else assert.match(m.hostname ?? '', k === 'web' ? /^web-\d{3}$/ : /^db-\d{2}$/);
      }
      const hostnames = machines.map((m) => m.hostname);
      assert.equal(new Set(hostnames).size, 200, 'no two machines share a hostname');
      const numbers = (prefix: string) => hostnames.filter((h) => h!.startsWith(prefix)).map((h) => Number(h!.slice(prefix.length))).sort((a, b) => a - b);
      const webCount = tags.filter((_, i) => kindOf(i) === 'web').length;
      const dbCount = tags.filter((_, i) => kindOf(i) === 'db').length;
      assert.deepEqual(numbers('web-'), Array.from({ length: webCount }, (_, i) => i + 1), 'web-001 … with no gap');
      assert.deepEqual(numbers('db-'), Array.from({ length: dbCount }, (_, i) => i + 1), 'db-01 … with no gap');
      for (const m of machines) {
        const builds = await t.ctx.storage.builds.listForMachine(m.id as number, 10, 0);
        assert.equal(builds.total, 1, `${m.service_tag}: exactly one build`);
        assert.equal(builds.items[0]!.profile, m.profile);
      }
      const applied = await t.ctx.storage.events.list({ kind: 'machine.rule_applied', limit: 500 });
      assert.equal(applied.total, 200, 'one event per machine naming its rule');
      assert.ok(applied.items.every((e) => typeof e.data?.rule === 'string' && e.message.startsWith(`rule ${String(e.data.rule)} applied`)));
    });

    test('editing a profile marks exactly its machines out of date; a bulk build by selector rebuilds them', async () => {
      const queue = t.ctx.builds.queueFor({ kind: 'builder', name: 'test-builder' }, 60_000);
      for (let record = await queue.claimNext(); record; record = await queue.claimNext()) {
        assert.ok(await queue.succeed(record.id, { storePath: `/nix/store/${'a'.repeat(32)}-x`, artifactUrl: 'http://x/', note: 'built' }));
      }
      assert.equal((await ok('GET', '/api/v1/machines?out_of_date=true')).total, 0, 'every image is up to date');
      const edited = await ok('PUT', '/api/v1/profiles/web', { nixos_config: '{ ... }: { services.nginx.enable = true; services.nginx.recommendedGzipSettings = true; }' });
      const stale = await all('&out_of_date=true');
      const web = await all('&profile=web');
      assert.equal(edited.out_of_date, web.length);
      assert.deepEqual(stale.map((m) => m.service_tag).sort(), web.map((m) => m.service_tag).sort(), 'exactly the profile’s machines');
      assert.ok(stale.every((m) => m.profile === 'web'));

      // What the edit touched, in one request: the profile's machines that are out of date.
      const dry = await ok('POST', '/api/v1/machines/bulk', { action: 'build', in_profile: 'web', out_of_date: true, dry_run: true });
      assert.equal(dry.matched, web.length);
      assert.equal((await t.ctx.storage.builds.countByStatus()).pending ?? 0, 0, 'a dry run requests nothing');
      assert.equal((await ok('POST', '/api/v1/machines/bulk', { action: 'build', in_profile: 'web', out_of_date: false, dry_run: true })).matched, 0, 'none of them is up to date');
      const bulk = await ok('POST', '/api/v1/machines/bulk', { action: 'build', in_profile: 'web', out_of_date: true });
      assert.equal(bulk.matched, web.length);
      assert.ok(bulk.results.every((r: { ok: boolean; build_id?: number }) => r.ok && typeof r.build_id === 'number'));
      const again = await ok('POST', '/api/v1/machines/bulk', { action: 'build', selector: 'role=web' });
      assert.ok(again.results.every((r: { ok: boolean; error?: { code: string; message: string } }) => !r.ok && r.error?.code === 'conflict' && /already has build/.test(r.error.message)), 'machines already building are skipped and say so');
      for (let record = await queue.claimNext(); record; record = await queue.claimNext()) {
        assert.ok(await queue.succeed(record.id, { storePath: `/nix/store/${'b'.repeat(32)}-x`, artifactUrl: 'http://x/', note: 'built' }));
      }
      assert.equal((await ok('GET', '/api/v1/machines?out_of_date=true')).total, 0, 'rebuilt from the edited profile');
      const audit = await t.ctx.storage.events.list({ kind: 'machines.bulk', limit: 10 });
      assert.ok(audit.items.some((e) => /bulk build on selector role=web: \d+ of \d+ machines/.test(e.message)));
      assert.ok(audit.items.some((e) => /bulk build on profile web, out of date: \d+ of \d+ machines/.test(e.message)), 'the audit names how the machines were picked');
    });

    test('a number is never reused while a machine holds it; a freed one is taken again', async () => {
      const web = (await all('&profile=web')).sort((a, b) => (a.hostname! < b.hostname! ? -1 : 1));
      const freed = web[4]!;
      await ok('DELETE', `/api/v1/machines/${freed.service_tag}`);
      assert.equal(await enroll(base, 'LATE001', 'web'), 201);
      assert.equal(await enroll(base, 'LATE002', 'web'), 201);
      const late = await all('&search=late00');
      assert.deepEqual(late.map((m) => m.hostname).sort(), [freed.hostname, `web-${String(web.length + 1).padStart(3, '0')}`].sort());
    });

    test('bad input is refused with a 4xx naming the problem, and nothing changes', async () => {
      const before = await rowCounts(t.ctx);
      const snapshot = JSON.stringify(await all());
      const cases: Array<[string, string, string, unknown, number, RegExp]> = [
        ['an unknown profile on a machine', 'PUT', '/api/v1/machines/RACK000', { profile: 'nope' }, 400, /profile nope does not exist/],
        ['an unknown profile as a filter', 'GET', '/api/v1/machines?profile=nope', undefined, 400, /profile nope does not exist/],
        ['an invalid selector', 'GET', '/api/v1/machines?selector=role%20in%20(', undefined, 400, /selector/],
        ['an invalid pattern', 'POST', '/api/v1/profiles', { name: 'bad', hostname_pattern: 'web-{id}' }, 400, /unknown placeholder \{id\}/],
        ['a pattern whose numbers would collide', 'POST', '/api/v1/profiles', { name: 'bad', hostname_pattern: 'web' }, 400, /numbers would collide/],
        ['kernel parameters with a space', 'POST', '/api/v1/profiles', { name: 'bad', kernel_params: ['a b'] }, 400, /kernel_params\[0\]/],
        ['kernel parameters the boot server writes', 'POST', '/api/v1/profiles', { name: 'bad', kernel_params: ['init=/bin/sh'] }, 400, /writes itself/],
        ['a profile name that is not a DNS label', 'POST', '/api/v1/profiles', { name: 'Bad_Name' }, 400, /profile name/],
        ['a profile that exists', 'POST', '/api/v1/profiles', { name: 'web' }, 409, /profile web exists/],
        ['a rule with an unknown profile', 'POST', '/api/v1/rules', { name: 'r1', set: { profile: 'nope' } }, 400, /profile nope does not exist/],
        ['a rule with a bad pattern', 'POST', '/api/v1/rules', { name: 'r1', set: { hostname_pattern: '{n}{n}' } }, 400, /more than one \{n\}/],
        ['a rule that exists', 'POST', '/api/v1/rules', { name: 'gpu', build: true }, 409, /rule named gpu exists/],
        ['applying rules to a selector that matches nothing', 'POST', '/api/v1/rules/apply', { selector: 'role=nothing' }, 422, /matches no machine/],
        ['applying a rule that matches none of the machines', 'POST', '/api/v1/rules/apply', { selector: 'role=web', rule: 'gpu' }, 422, /rule gpu matches none of the/],
        ['a bulk set with an unknown profile', 'POST', '/api/v1/machines/bulk', { action: 'set', selector: 'role=web', profile: 'nope' }, 400, /profile nope does not exist/],
        ['a bulk set with a bad pattern', 'POST', '/api/v1/machines/bulk', { action: 'set', selector: 'role=web', hostname_pattern: 'x' }, 400, /numbers would collide/],
        ['a bulk action with an empty selector', 'POST', '/api/v1/machines/bulk', { action: 'delete', selector: '' }, 400, /selector is empty/],
        ['a bulk action with both selector and ids', 'POST', '/api/v1/machines/bulk', { action: 'delete', selector: 'role=web', ids: ['RACK000'] }, 400, /either ids, or a selector/],
        ['a bulk action with ids and a profile', 'POST', '/api/v1/machines/bulk', { action: 'delete', in_profile: 'web', ids: ['RACK000'] }, 400, /either ids, or a selector/],
        ['a bulk action naming no machines', 'POST', '/api/v1/machines/bulk', { action: 'build' }, 400, /give the machines/],
        ['a bulk action in an unknown profile', 'POST', '/api/v1/machines/bulk', { action: 'delete', in_profile: 'nope' }, 400, /profile nope does not exist/],
        ['a bulk action in a profile that is no name', 'POST', '/api/v1/machines/bulk', { action: 'delete', in_profile: 'No Name!' }, 400, /./],
        ['a bulk set with nothing to set', 'POST', '/api/v1/machines/bulk', { action: 'set', selector: 'role=web' }, 400, /set needs profile, labels or hostname_pattern/],
        ['a bulk build with set fields', 'POST', '/api/v1/machines/bulk', { action: 'build', selector: 'role=web', profile: 'db' }, 400, /only go with action set/],
        ['a bulk action on an unknown machine', 'POST', '/api/v1/machines/bulk', { action: 'set', ids: ['RACK000', 'NOSUCH'], labels: { a: 'b' } }, 404, /machine NOSUCH not found/],
        ['deleting a profile in use', 'DELETE', '/api/v1/profiles/web', undefined, 409, /used by \d+ machines/],
        ['a hostname another machine holds', 'PUT', '/api/v1/machines/RACK000', { hostname: 'db-01' }, 409, /hostname db-01 is taken/],
      ];
      for (const [name, method, url, payload, status, message] of cases) {
        const r = await call(method, url, payload);
        assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error.message, message, name);
      }
      assert.deepEqual(await rowCounts(t.ctx), before, 'no row written or removed');
      assert.equal(JSON.stringify(await all()), snapshot, 'no machine changed');
      const preview = await ok('POST', '/api/v1/rules/preview', { match: { manufacturer: 'Lenovo*' }, set: { labels: { x: 'y' } } });
      assert.deepEqual(preview, { matched: 0, items: [] }, 'a rule matching nothing previews as 0');
    });

    test('a preview says what a rule would do and writes nothing; apply then does it', async () => {
      const before = await rowCounts(t.ctx);
      const body = { match: { manufacturer: 'Dell*' }, set: { labels: { rack: 'r12' } } };
      const preview = await ok('POST', '/api/v1/rules/preview', body);
      const web = await all('&profile=web');
      assert.equal(preview.matched, web.length);
      assert.ok(preview.items.every((i: { changes: string[]; labels: Record<string, string> }) => i.changes.join() === 'labels' && i.labels.rack === 'r12'));
      assert.deepEqual(await rowCounts(t.ctx), before, 'a preview writes nothing');
      assert.equal((await all('&selector=rack%3Dr12')).length, 0);
      await ok('POST', '/api/v1/rules', { name: 'rack-r12', priority: 1, ...body });
      const applied = await ok('POST', '/api/v1/rules/apply', { selector: 'role=web', rule: 'rack-r12' });
      assert.equal(applied.matched, web.length);
      assert.equal((await all('&selector=rack%3Dr12,role%3Dweb')).length, web.length);
    });

    test('bulk set is all or nothing and names the machine that cannot take it; dry run changes nothing', async () => {
      const before = await rowCounts(t.ctx);
      const web = await all('&profile=web');
      const dry = await ok('POST', '/api/v1/machines/bulk', { action: 'set', selector: 'role=web', labels: { tier: 'front' }, dry_run: true });
      assert.deepEqual([dry.matched, dry.dry_run, dry.results.every((r: { ok: boolean; changes: string[] }) => r.ok && r.changes.join() === 'labels')], [web.length, true, true]);
      assert.deepEqual(await rowCounts(t.ctx), before, 'a dry run writes nothing');
      const done = await ok('POST', '/api/v1/machines/bulk', { action: 'set', selector: 'role=web', labels: { tier: 'front' } });
      assert.equal(done.results.length, web.length);
      assert.equal((await all('&selector=tier%3Dfront')).length, web.length);
      const events = await t.ctx.storage.events.list({ kind: 'machines.bulk', limit: 50 });
      assert.ok(events.items.some((e) => e.message === `bulk set on selector role=web: ${web.length} machines`), 'one event for the whole, naming selector and count');
      // Moving two web machines to the db profile is fine; naming a hostless one with {label.rack} it lacks is not.
      const hostless = web[0]!;
      await ok('PUT', `/api/v1/machines/${hostless.service_tag}`, { hostname: null });
      const snapshot = JSON.stringify(await all());
      const refused = await call('POST', '/api/v1/machines/bulk', { action: 'set', ids: [web[1]!.service_tag, hostless.service_tag], profile: 'db', hostname_pattern: 'x-{label.nope}-{n}' });
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.match(refused.body.error.message, new RegExp(`^${hostless.service_tag}: .*needs label nope.*nothing was changed$`));
      assert.equal(JSON.stringify(await all()), snapshot, 'not even the first machine changed');
    });
  });
}
