import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../server/roles.ts';
import { RulePreview } from './pages/rules-page.tsx';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

const operator = { 'x-test-role': 'operator' };
const viewer = { 'x-test-role': 'viewer' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const encode = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('the profiles and rules pages, and the machine list’s labels', () => {
  let t: TestContext;
  let app: FastifyInstance;
  const post = (url: string, fields: Record<string, string>) => app.inject({ method: 'POST', url, headers: { ...operator, ...form }, payload: encode(fields) });
  before(async () => {
    t = await createTestContext(freshSqlite());
    app = await buildApiServer(t.ctx);
    for (const tag of ['DASH01', 'DASH02']) assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) })).statusCode, 201);
  });
  after(async () => {
    await app.close();
    await t.close();
  });

  test('create a profile from the form; a bad pattern re-shows the form with the reason and creates nothing', async () => {
    const bad = await post('/profiles', { name: 'web', hostname_pattern: 'web', nixos_config: '{ ... }: { }' });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.body, /numbers would collide/);
    assert.match(bad.body, /value="web"/, 'what was typed is kept');
    assert.equal((await t.ctx.profiles.list()).length, 0);
    const ok = await post('/profiles', { name: 'web', hostname_pattern: 'web-{n:02}', kernel_params: 'console=ttyS1,115200', health_check: 'systemctl is-active "nginx" <x>', skip_boot_check: 'yes', nixos_config: '{ ... }:\r\n{ services.nginx.enable = true; }\r\n' });
    assert.equal(ok.statusCode, 303, ok.body);
    assert.equal(ok.headers.location, '/profiles/web?notice=created');
    const profile = await t.ctx.profiles.get('web');
    assert.deepEqual([profile.kernel_params, profile.nixos_config, profile.health_check, profile.skip_boot_check], [['console=ttyS1,115200'], '{ ... }:\n{ services.nginx.enable = true; }\n', 'systemctl is-active "nginx" <x>', true]);
    const shown = await app.inject({ url: '/profiles/web', headers: operator });
    assert.match(shown.body, /<input type="checkbox" name="skip_boot_check" value="yes" checked=""\/>/, 'the boot check box is kept ticked');
    assert.match(shown.body, /value="systemctl is-active &quot;nginx&quot; &lt;x&gt;"/, 'the health check is shown in its field, escaped');
    const list = await app.inject({ url: '/profiles', headers: viewer });
    assert.match(list.body, /href="\/profiles\/web"/);
    assert.doesNotMatch(list.body, /New profile/, 'viewers get no form');
  });

  test('a rule with a live preview: the fragment says what it matches, creating it adds it', async () => {
    const preview = await post('/rules/preview', { name: 'dell', manufacturer: 'Dell*', profile: 'web', set_labels: 'role=web' });
    assert.equal(preview.statusCode, 200);
    assert.match(preview.body, /data-matched="2"/);
    assert.match(preview.body, /DASH01/);
    const none = await post('/rules/preview', { manufacturer: 'Lenovo*', set_labels: 'role=web' });
    assert.match(none.body, /data-matched="0"/);
    // Half typed in (a match, nothing it gives yet): the preview still says which machines it picks.
    const incomplete = await post('/rules/preview', { manufacturer: 'Dell*' });
    assert.match(incomplete.body, /data-matched="2"/);
    assert.match(incomplete.body, /<td>nothing<\/td>/);
    assert.doesNotMatch(incomplete.body, /alert-error/);
    assert.equal((await t.ctx.rules.list()).length, 0, 'previews add nothing');
    const created = await post('/rules', { name: 'dell', priority: '10', manufacturer: 'Dell*', profile: 'web', set_labels: 'role=web', build: 'yes' });
    assert.equal(created.statusCode, 303, created.body);
    const [rule] = await t.ctx.rules.list();
    assert.deepEqual([rule!.name, rule!.priority, rule!.match, rule!.set, rule!.build], ['dell', 10, { manufacturer: 'Dell*' }, { profile: 'web', labels: { role: 'web' } }, true]);
    assert.match((await app.inject({ url: '/rules', headers: viewer })).body, /dell/);
  });

  test('the machine list filters by a label selector, shows label chips, and bulk-sets a profile on the selection', async () => {
    await t.ctx.machines.update('DASH01', { labels: { rack: 'r12' } }, { kind: 'user', name: 'test' });
    const bad = await app.inject({ url: '/machines?selector=rack%20in%20(', headers: viewer });
    assert.equal(bad.statusCode, 200);
    assert.match(bad.body, /class="alert alert-error"[^>]*>Labels: /);
    const page = await app.inject({ url: '/machines?selector=rack%3Dr12', headers: operator });
    assert.match(page.body, /DASH01/);
    assert.doesNotMatch(page.body, /DASH02/);
    assert.match(page.body, /class="chip mono" href="\/machines\?selector=rack%3Dr12"/);
    assert.match(page.body, /action="\/machines\/bulk"/);
    const bulk = await post('/machines/bulk', { selector: 'rack=r12', action: 'set', profile: 'web' });
    assert.equal(bulk.statusCode, 303, bulk.body);
    assert.equal(bulk.headers.location, '/machines?selector=rack%3Dr12&notice=bulk-set-1-1');
    const m = await t.ctx.machines.get('DASH01');
    assert.deepEqual([m.profile, m.hostname, m.out_of_date], ['web', 'web-01', true]);
    assert.equal((await t.ctx.machines.get('DASH02')).profile, null);
  });

  test('selection mode: a box per machine, a table that stops refreshing, and a bulk action on the ticked ones', async () => {
    const plain = await app.inject({ url: '/machines', headers: operator });
    assert.match(plain.body, /id="machine-table" hx-get=/, 'the list refreshes itself');
    assert.match(plain.body, /href="\/machines\?select=yes">Select machines/);
    const page = await app.inject({ url: '/machines?select=yes', headers: operator });
    assert.match(page.body, /<div id="machine-table">/, 'no refresh while ticking');
    const d2 = await t.ctx.machines.get('DASH02');
    assert.match(page.body, new RegExp(`<input type="checkbox" name="ids" value="id:${d2.id}" form="bulk-form"`));
    const none = await post('/machines/bulk', { mode: 'ids', action: 'label', label: 'tier=back' });
    assert.equal(none.statusCode, 400);
    assert.match(none.body, /tick at least one machine/);
    const r = await app.inject({ method: 'POST', url: '/machines/bulk', headers: { ...operator, ...form }, payload: `mode=ids&action=label&label=tier%3Dback&ids=id%3A${d2.id}` });
    assert.equal(r.statusCode, 303, r.body);
    assert.equal(r.headers.location, '/machines?select=yes&notice=bulk-label-1-1');
    assert.deepEqual((await t.ctx.machines.get('DASH02')).labels, { tier: 'back' });
    assert.deepEqual((await t.ctx.machines.get('DASH01')).labels.tier, undefined, 'only the ticked machine');
    assert.doesNotMatch((await app.inject({ url: '/machines?select=yes', headers: viewer })).body, /name="ids"/, 'viewers get no boxes');
  });

  test('a machine page picks a profile from a menu; the saved hostname is kept', async () => {
    const page = await app.inject({ url: '/machines/DASH02', headers: operator });
    assert.match(page.body, /<select id="profile" name="profile"/);
    assert.match(page.body, /<option value="web">web<\/option>/);
    const saved = await post('/machines/DASH02', { hostname: 'db-7', description: '', nixos_config: '', profile_field: '1', profile: 'web' });
    assert.equal(saved.statusCode, 303, saved.body);
    const m = await t.ctx.machines.get('DASH02');
    assert.deepEqual([m.profile, m.hostname, m.status], ['web', 'db-7', 'configured']);
    const unknown = await post('/machines/DASH02', { hostname: 'db-7', description: '', nixos_config: '', profile_field: '1', profile: 'nope' });
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.body, /profile nope does not exist/);
    const without = await post('/machines/DASH02', { hostname: 'db-7', description: 'x', nixos_config: '' });
    assert.equal(without.statusCode, 303);
    assert.equal((await t.ctx.machines.get('DASH02')).profile, 'web', 'a form without the menu leaves the profile');
    await t.ctx.machines.update('DASH02', { profile: null, hostname: null }, { kind: 'user', name: 'test' });
  });

  test('the profile page counts its out-of-date machines and rebuilds them in one click', async () => {
    const page = await app.inject({ url: '/profiles/web', headers: operator });
    assert.match(page.body, /data-out-of-date="1"/);
    assert.match(page.body, /Rebuild them \(1\)/);
    const rebuild = await post('/profiles/web/rebuild', {});
    assert.equal(rebuild.statusCode, 303, rebuild.body);
    assert.equal((await t.ctx.machines.get('DASH01')).status, 'building');
    const inUse = await post('/profiles/web/delete', {});
    assert.equal(inUse.statusCode, 409);
    assert.match(inUse.body, /profile web is used by 1 machine/);
  });

  test('where a machine is cabled: its NICs\' switch ports on its page, and a rule form that matches on the switch', async () => {
    const lldp = { chassis_id: '44:4c:a8:12:34:56', chassis_id_type: 'mac', system_name: 'leaf-r12-<a>', port_id: 'Ethernet12', port_id_type: 'ifname', port_description: 'r12-u07', vlan_id: 100 };
    const payload = enrollmentPayload('DASH03');
    payload.hardware.nics = [{ ...payload.hardware.nics[0]!, lldp } as (typeof payload.hardware.nics)[number]];
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload })).statusCode, 201);
    const page = await app.inject({ url: '/machines/DASH03', headers: viewer });
    assert.match(page.body, /<th scope="col">Switch port \(LLDP\)<\/th>/);
    assert.match(page.body, /<td>leaf-r12-&lt;a&gt; Ethernet12 \(r12-u07\) · VLAN 100<\/td>/, 'what a switch announces is escaped');
    const preview = await post('/rules/preview', { switch: 'leaf-r12-*', switch_port: 'Ethernet1?', set_labels: 'rack=r12' });
    assert.match(preview.body, /data-matched="1"/);
    assert.match(preview.body, /DASH03/);
    const created = await post('/rules', { name: 'rack-r12', switch: 'leaf-r12-*', set_labels: 'rack=r12' });
    assert.equal(created.statusCode, 303, created.body);
    assert.deepEqual((await t.ctx.rules.get('rack-r12')).match, { switch: 'leaf-r12-*' });
  });
});

test('a rule preview past 50 matches says only the first 50 are listed', () => {
  const effect = (n: number) => ({ id: n, service_tag: `BIG${n}`, rule: 'r', changes: ['labels'], hostname: null, profile: null, labels: {}, build: false });
  const html = String(RulePreview({ preview: { matched: 10_003, items: Array.from({ length: 60 }, (_, i) => effect(i + 1)) } }));
  assert.match(html, /data-matched="10003"/);
  assert.equal(html.match(/<tr>/g)?.length, 51, 'a head row and 50 machines');
  assert.match(html, /The first 50 are shown, by id\./);
  assert.doesNotMatch(String(RulePreview({ preview: { matched: 2, items: [effect(1), effect(2)] } })), /first 50/);
});
