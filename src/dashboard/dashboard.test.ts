import { buildApiServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { formatBackupRecord, LAST_BACKUP_SETTING } from '../core/backup-record.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { nowIso } from '../core/types.ts';
import { createTestContext, enrollmentPayload, type TestContext, sqlOf } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';

const operator = { 'x-test-role': 'operator' };
const viewer = { 'x-test-role': 'viewer' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const encode = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

for (const kind of await testDatabaseKinds()) {
  describe(`dashboard on ${kind.name}`, () => {
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

    const recentBuildsOf = async (tag: string) => {
      const m = await t.ctx.machines.get(tag);
      return (await t.ctx.storage.builds.listForMachine(m.id, 50, 0)).items.map((b) => b.id);
    };

    test('without a session, pages redirect to /login and polling gets 401 with HX-Redirect', async () => {
      const page = await app.inject({ url: '/machines?status=ready' });
      assert.equal(page.statusCode, 303);
      assert.equal(page.headers.location, '/login?next=%2Fmachines%3Fstatus%3Dready');
      const poll = await app.inject({ url: '/machines?fragment=table', headers: { 'hx-request': 'true' } });
      assert.equal(poll.statusCode, 401);
      assert.equal(poll.headers['hx-redirect'], '/login');
      const login = await app.inject({ url: '/login' });
      assert.equal(login.statusCode, 200);
      assert.match(login.body, /<form method="post" action="\/login"/);
      assert.equal(login.headers['content-security-policy']?.includes("script-src 'self'"), true);
    });

    test('a browser\'s unknown or undecodable address gets a page (the path escaped and cut short); API clients keep JSON', async () => {
      const html = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
      const missing = await app.inject({ url: '/settings<b>x</b>', headers: { ...viewer, ...html } });
      assert.equal(missing.statusCode, 404);
      assert.match(String(missing.headers['content-type']), /^text\/html/);
      assert.match(missing.body, /<h1>Not found<\/h1>/);
      assert.match(missing.body, /role="alert">There is no page at &quot;\/settings%3Cb%3Ex%3C\/b%3E&quot;\.<\/div>/);
      const bad = await app.inject({ url: '/machines/%ZZ', headers: html });
      assert.equal(bad.statusCode, 400);
      assert.match(bad.body, /<h1>Request refused<\/h1>[\s\S]*is not valid percent-encoding/);
      assert.match(bad.body, /href="\/login"/, 'nobody is known yet: the page offers to sign in');
      const long = await app.inject({ url: `/machines/${'A'.repeat(5000)}`, headers: html });
      assert.ok(long.body.length < 20_000 && !long.body.includes('A'.repeat(200)), 'the path is not echoed whole');
      const api = await app.inject({ url: '/api/v1/nope', headers: { ...viewer, ...html } });
      assert.deepEqual(api.json(), { error: { code: 'not_found', message: 'no route for GET "/api/v1/nope"' } });
      const json = await app.inject({ url: '/settings', headers: viewer });
      assert.equal(json.json().error.code, 'not_found');
    });

    test('an empty fleet tells a newcomer how to get a first machine in', async () => {
      const r = await app.inject({ url: '/', headers: viewer });
      assert.equal(r.statusCode, 200);
      assert.match(r.body, /No machines yet/);
      assert.match(r.body, /metal lab boot/);
      assert.match(r.body, /http:\/\/10\.0\.2\.100\/boot\.ipxe/);
    });

    test('hostile hardware strings and descriptions are shown as text, never as markup', async () => {
      const hostile = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">\'"&';
      const payload = enrollmentPayload('XSS001', {
        hardware: { manufacturer: hostile, model: hostile, cpu: { model: hostile, cores: 4 }, disks: [{ name: hostile, model: hostile }], rack: hostile },
      });
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload })).statusCode, 201);
      await t.ctx.machines.update('XSS001', { description: hostile }, { kind: 'user', name: 'test' });
      for (const url of ['/', '/machines', '/machines/XSS001']) {
        const r = await app.inject({ url, headers: viewer });
        assert.equal(r.statusCode, 200, url);
        assert.equal(r.body.includes('<script>window'), false, url);
        assert.equal(r.body.includes('<img src=x'), false, url);
        assert.match(r.body, /&lt;script&gt;window\.pwned=1&lt;\/script&gt;&lt;img src=x onerror=&quot;window\.pwned=2&quot;&gt;/, url);
      }
    });

    test('a viewer sees no action buttons, and a forged action is refused without a change', async () => {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('VIEW01') });
      const page = await app.inject({ url: '/machines/VIEW01', headers: viewer });
      assert.equal(page.statusCode, 200);
      assert.equal(/method="post"/.test(page.body.replace('<form method="post" action="/logout">', '')), false, 'no form posts except logout');
      assert.equal(page.body.includes('>Save<'), false);
      assert.match(page.body, /id="hostname"[^>]*readonly/);
      const forged = await app.inject({ method: 'POST', url: '/machines/VIEW01', headers: { ...viewer, ...form }, payload: encode({ hostname: 'owned' }) });
      assert.equal(forged.statusCode, 403);
      assert.match(forged.body, /this needs the operator role/);
      assert.equal((await t.ctx.machines.get('VIEW01')).hostname, null);
      const build = await app.inject({ method: 'POST', url: '/machines/VIEW01/build', headers: { ...viewer, ...form }, payload: '' });
      assert.equal(build.statusCode, 403);
    });

    test('save: hostname, description and configuration (CRLF from the browser becomes LF)', async () => {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('EDIT01') });
      const r = await app.inject({
        method: 'POST',
        url: '/machines/EDIT01',
        headers: { ...operator, ...form },
        payload: encode({ hostname: 'web-01', description: 'rack 4\r\nslot 2', nixos_config: '{ ... }:\r\n{\r\n  services.openssh.enable = true;\r\n}\r\n' }),
      });
      assert.equal(r.statusCode, 303);
      assert.equal(r.headers.location, '/machines/EDIT01?notice=saved');
      const m = await t.ctx.machines.get('EDIT01');
      assert.equal(m.hostname, 'web-01');
      assert.equal(m.description, 'rack 4\nslot 2');
      assert.equal(m.nixos_config, '{ ... }:\n{\n  services.openssh.enable = true;\n}\n');
      assert.equal(m.status, 'configured');
      const shown = await app.inject({ url: r.headers.location, headers: operator });
      assert.match(shown.body, /role="status">Saved\./);
    });

    test('a refused save shows the reason, keeps what was typed and changes nothing', async () => {
      const r = await app.inject({
        method: 'POST',
        url: '/machines/EDIT01',
        headers: { ...operator, ...form },
        payload: encode({ hostname: 'not_valid!', description: 'kept', nixos_config: '{ ... }: { }' }),
      });
      assert.equal(r.statusCode, 400);
      assert.match(r.body, /role="alert">hostname &quot;not_valid!&quot; is invalid/);
      assert.match(r.body, /id="hostname" name="hostname" value="not_valid!"/);
      assert.equal((await t.ctx.machines.get('EDIT01')).hostname, 'web-01');
    });

    test('several files: each has its own editor, a new one is added from the empty slot, a ticked one is removed', async () => {
      // Enrolled through the service: this suite's HTTP enrollments stay under the per-address rate.
      await t.ctx.machines.enroll(enrollmentPayload('FILES01'), { kind: 'machine', name: 'FILES01' });
      const entry = '{ ... }: { imports = [ ./hardware.nix ]; }\n';
      const added = await app.inject({
        method: 'POST',
        url: '/machines/FILES01',
        headers: { ...operator, ...form },
        payload: encode({ hostname: 'files-01', description: '', nixos_config: entry, file_name_1: 'hardware.nix', file_text_1: '{ ... }:\r\n{ }\r\n', file_name_2: '', file_text_2: '' }),
      });
      assert.equal(added.statusCode, 303, added.body);
      assert.deepEqual((await t.ctx.machines.get('FILES01')).nixos_files, { 'configuration.nix': entry, 'hardware.nix': '{ ... }:\n{ }\n' });

      await t.ctx.machines.update('FILES01', { nixos_files: { 'configuration.nix': entry, 'hardware.nix': 'h', 'modules/x.nix': '"</textarea><script>alert(1)</script>"' } }, { kind: 'system', name: 'system' });
      const page = await app.inject({ url: '/machines/FILES01', headers: operator });
      assert.match(page.body, /<a class="mono" href="#file-0">configuration\.nix<\/a> · <a class="mono" href="#file-1">hardware\.nix<\/a> · <a class="mono" href="#file-2">modules\/x\.nix<\/a>/);
      assert.match(page.body, /name="file_name_1" value="hardware\.nix"/);
      assert.match(page.body, /name="file_name_2" value="modules\/x\.nix"/);
      assert.match(page.body, /<textarea id="file_text_2" name="file_text_2"[^>]*>\n&quot;&lt;\/textarea&gt;&lt;script&gt;/, 'a file\'s text is escaped');
      assert.doesNotMatch(page.body, /<script>alert/);
      assert.match(page.body, /name="file_name_3"[^>]*placeholder="hardware\.nix"/, 'an empty slot to add a file');
      const viewerPage = await app.inject({ url: '/machines/FILES01', headers: viewer });
      assert.doesNotMatch(viewerPage.body, /file_remove_|Add a file/, 'a viewer reads the files but cannot change them');

      const removed = await app.inject({
        method: 'POST',
        url: '/machines/FILES01',
        headers: { ...operator, ...form },
        payload: encode({ hostname: 'files-01', description: '', nixos_config: entry, file_name_1: 'hardware.nix', file_text_1: 'h', file_name_2: 'modules/x.nix', file_text_2: 'x', file_remove_2: 'yes', file_name_3: '', file_text_3: '' }),
      });
      assert.equal(removed.statusCode, 303);
      assert.deepEqual((await t.ctx.machines.get('FILES01')).nixos_files, { 'configuration.nix': entry, 'hardware.nix': 'h' });

      for (const [fields, message] of [
        [{ file_name_1: 'hardware.nix', file_text_1: 'a', file_name_2: 'hardware.nix', file_text_2: 'b' }, /two files are named &quot;hardware\.nix&quot;/],
        [{ file_name_1: '', file_text_1: 'text without a name' }, /a file has text but no name/],
        [{ file_name_1: '../up.nix', file_text_1: 'x' }, /file &quot;\.\.\/up\.nix&quot; is not allowed/],
      ] as const) {
        const r = await app.inject({ method: 'POST', url: '/machines/FILES01', headers: { ...operator, ...form }, payload: encode({ hostname: 'files-01', description: '', nixos_config: entry, ...fields }) });
        assert.equal(r.statusCode, 400);
        assert.match(r.body, message);
        assert.match(r.body, new RegExp(`name="file_text_1"[^>]*>\\n${fields.file_text_1}`), 'what was typed is kept');
        assert.deepEqual((await t.ctx.machines.get('FILES01')).nixos_files, { 'configuration.nix': entry, 'hardware.nix': 'h' });
      }
    });

    test('each build shows its nixpkgs and its files; the machine page shows a short revision per build and says when they differ', async () => {
      const system = { kind: 'system', name: 'system' } as const;
      const revisions = ['1111111111112222222222223333333333334444', 'aaaaaaaaaaaabbbbbbbbbbbbccccccccccccdddd'];
      const ids: number[] = [];
      for (const revision of revisions) {
        const build = await t.ctx.machines.requestBuild('FILES01', system);
        await sqlOf(t.ctx)
          .updateTable('builds')
          .set({ status: 'success', started_at: nowIso(), completed_at: nowIso(), nixpkgs_version: `24.05.${revision.slice(0, 7)}`, nixpkgs_revision: revision, nixpkgs_source: '/srv/<nixpkgs>', nixpkgs_sha256: null })
          .where('id', '=', build.id)
          .execute();
        await sqlOf(t.ctx).updateTable('machines').set({ status: 'ready' }).where('service_tag', '=', 'FILES01').execute();
        t.ctx.notifier.emit('machine.updated', build.machine_id);
        ids.push(build.id);
      }
      const page = await app.inject({ url: `/builds/${ids[0]}`, headers: viewer });
      assert.match(page.body, /<dt>nixpkgs<\/dt><dd><span class="nixpkgs"><span class="mono">24\.05\.1111111<\/span> revision <span class="mono" title="1111111111112222222222223333333333334444">1111111111112222222222223333333333334444<\/span> from <span class="mono">\/srv\/&lt;nixpkgs&gt;<\/span>/);
      assert.match(page.body, /Configuration this build used \(2 files\)/);
      assert.match(page.body, /<h3 class="mono file-name">hardware\.nix<\/h3>/);
      const machine = await app.inject({ url: '/machines/FILES01', headers: viewer });
      assert.match(machine.body, /<td class="mono" title="aaaaaaaaaaaabbbbbbbbbbbbccccccccccccdddd">aaaaaaaaaaaa<\/td>/);
      assert.match(machine.body, /<td class="mono" title="1111111111112222222222223333333333334444">111111111111<\/td>/);
      assert.match(machine.body, /These builds used 2 different nixpkgs: <span class="mono">aaaaaaaaaaaa, 111111111111<\/span>/);
      await sqlOf(t.ctx).updateTable('builds').set({ nixpkgs_revision: revisions[1]! }).where('id', '=', ids[0]!).execute();
      const same = await app.inject({ url: '/machines/FILES01', headers: viewer });
      assert.doesNotMatch(same.body, /different nixpkgs/, 'one nixpkgs, no note');
      await t.ctx.machines.remove('FILES01', system);
    });

    test('build: redirects to the build page; a second build is refused with the reason on the page', async () => {
      const r = await app.inject({ method: 'POST', url: '/machines/EDIT01/build', headers: { ...operator, ...form }, payload: '' });
      assert.equal(r.statusCode, 303);
      assert.match(r.headers.location ?? '', /^\/builds\/\d+$/);
      const page = await app.inject({ url: r.headers.location, headers: viewer });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /data-stream="\/builds\/\d+\/stream\?offset=0"/);
      assert.doesNotMatch(page.body, /Cancel build/, 'a viewer gets no cancel button');
      const again = await app.inject({ method: 'POST', url: '/machines/EDIT01/build', headers: { ...operator, ...form }, payload: '' });
      assert.equal(again.statusCode, 409);
      assert.match(again.body, /role="alert">machine EDIT01 already has build \d+ pending/);
    });

    test('an operator can cancel a running build; a failed build shows its error first', async () => {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('CANCEL1') });
      await t.ctx.machines.update('CANCEL1', { hostname: 'cancel-1' }, { kind: 'user', name: 'test' });
      const build = await t.ctx.machines.requestBuild('CANCEL1', { kind: 'user', name: 'test' });
      const page = await app.inject({ url: `/machines/CANCEL1`, headers: operator });
      assert.match(page.body, /<button type="submit" class="primary" disabled="" title="A build of this machine is already pending or running">/);
      const r = await app.inject({ method: 'POST', url: `/builds/${build.id}/cancel`, headers: { ...operator, ...form }, payload: '' });
      assert.equal(r.statusCode, 303);
      assert.equal(r.headers.location, `/builds/${build.id}?notice=cancelled`);
      assert.equal((await t.ctx.builds.get(build.id)).status, 'cancelled');
      const shown = await app.inject({ url: r.headers.location, headers: operator });
      assert.match(shown.body, /The build was cancelled\./);
      assert.match(shown.body, /<strong>Build cancelled:<\/strong> <span class="pre-wrap">cancelled by user test-operator<\/span>/);
      assert.ok(shown.body.indexOf('Build cancelled:') < shown.body.indexOf('id="build-log"'), 'the error comes before the log');
      const again = await app.inject({ method: 'POST', url: `/builds/${build.id}/cancel`, headers: { ...operator, ...form }, payload: '' });
      assert.equal(again.statusCode, 409);
      assert.match(again.body, /is already cancelled/);
    });

    test('a successful build lists its published files with sizes, sha256 and boot-server links', async () => {
      const build = (await t.ctx.storage.builds.findActiveForMachine((await t.ctx.machines.get('EDIT01')).id))!;
      const dir = t.ctx.images.buildDir(build.id);
      mkdirSync(dir, { recursive: true });
      const sha = 'a'.repeat(64);
      writeFileSync(
        join(dir, 'boot.json'),
        JSON.stringify({ init: '/nix/store/x-init', kernel_params: ['console=ttyS0'], files: { bzImage: { size: 12345678, sha256: sha }, '../evil': { size: 1 } }, secure_boot: { subject: 'CN=Site <b>db</b>', cert_sha256: 'b'.repeat(64) } }),
      );
      const key = (await t.ctx.storage.builds.findRecord(build.id))!.image_key;
      await sqlOf(t.ctx).updateTable('builds').set({ status: 'success', started_at: nowIso(), completed_at: nowIso(), log_output: 'done\n', artifact_url: `http://10.0.2.100/images/builds/${key}/` }).where('id', '=', build.id).execute();
      const page = await app.inject({ url: `/builds/${build.id}`, headers: viewer });
      assert.match(page.body, new RegExp(`href="http://10\\.0\\.2\\.100/images/builds/${key}/bzImage"`));
      assert.match(page.body, /12\.3 MB/);
      assert.match(page.body, new RegExp(sha));
      assert.doesNotMatch(page.body, /evil/);
      assert.match(page.body, new RegExp(`<dt>Secure Boot</dt><dd><span class="secure-boot" title="certificate SHA-256 ${'b'.repeat(64)}">kernel signed for CN=Site &lt;b&gt;db&lt;/b&gt;</span></dd>`));
      assert.doesNotMatch(page.body, /data-stream=/, 'a finished build is not streamed');
    });

    test('a build whose image passed the boot check says how long it took; one not checked says nothing of it', async () => {
      const build = (await recentBuildsOf('EDIT01'))[0]!;
      const unchecked = await app.inject({ url: `/builds/${build}`, headers: viewer });
      assert.doesNotMatch(unchecked.body, /Boot check/);
      await sqlOf(t.ctx).updateTable('builds').set({ boot_check_seconds: 41 }).where('id', '=', build).execute();
      const checked = await app.inject({ url: `/builds/${build}`, headers: viewer });
      assert.match(checked.body, /<dt>Boot check<\/dt><dd><span class="boot-check"[^>]*>booted in a VM in 41 s<\/span><\/dd>/);
      const api = await app.inject({ url: `/api/v1/builds/${build}`, headers: viewer });
      assert.equal(api.json().boot_check_seconds, 41);
      await sqlOf(t.ctx).updateTable('builds').set({ boot_check_seconds: null }).where('id', '=', build).execute();
    });

    test('the machine page says which build it serves and which it last booted, and when', async () => {
      const [build] = await recentBuildsOf('EDIT01');
      const m = await t.ctx.machines.get('EDIT01');
      const bootedAt = new Date(Date.now() - 5 * 60_000).toISOString();
      await t.ctx.storage.machines.update(m.id, { image_build_id: build!, booted_build_id: build!, booted_at: bootedAt }, nowIso());
      const page = await app.inject({ url: '/machines/EDIT01?fragment=live', headers: viewer });
      assert.match(page.body, new RegExp(`<dt>Boot image</dt><dd><a href="/builds/${build}">build #${build}</a>`));
      assert.match(page.body, new RegExp(`<dt>Last booted</dt><dd><a href="/builds/${build}">build #${build}</a>, <time datetime="${bootedAt}"[^>]*>5 min ago</time>`));
      assert.doesNotMatch(page.body, /data-health=/, 'a report without a health result shows none');
      await t.ctx.storage.machines.update(m.id, { booted_health: { ok: false, exit_code: 3, output: '"><script>x</script>' } }, nowIso());
      const checked = await app.inject({ url: '/machines/EDIT01?fragment=live', headers: viewer });
      assert.match(checked.body, /<span class="badge badge-failed" title="&quot;&gt;&lt;script&gt;x&lt;\/script&gt;" data-health="failed"> health check failed \(exit 3\)<\/span>/);
    });

    test('a very long log shows its tail and links to the whole log', async () => {
      const build = (await recentBuildsOf('EDIT01'))[0]!;
      const log = `${'early line\n'.repeat(100_000)}the last line\n`;
      await sqlOf(t.ctx).updateTable('builds').set({ log_output: log }).where('id', '=', build).execute();
      const page = await app.inject({ url: `/builds/${build}`, headers: viewer });
      assert.match(page.body, /The first 100,014 characters are left out here/);
      assert.match(page.body, new RegExp(`href="/api/v1/builds/${build}/log"`));
      assert.match(page.body, /the last line/);
    });

    test('delete needs the service tag typed exactly', async () => {
      const wrong = await app.inject({ method: 'POST', url: '/machines/VIEW01/delete', headers: { ...operator, ...form }, payload: encode({ confirm: 'view01' }) });
      assert.equal(wrong.statusCode, 400);
      assert.match(wrong.body, /type the service tag VIEW01 exactly/);
      assert.ok(await t.ctx.machines.find('VIEW01'));
      const right = await app.inject({ method: 'POST', url: '/machines/VIEW01/delete', headers: { ...operator, ...form }, payload: encode({ confirm: 'VIEW01' }) });
      assert.equal(right.statusCode, 303);
      assert.equal(right.headers.location, '/machines?notice=deleted');
      assert.equal(await t.ctx.machines.find('VIEW01'), undefined);
    });

    test('machines list: search, status filter, sort and pages', async () => {
      for (let i = 0; i < 55; i += 1) {
        await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(`PAGE${String(i).padStart(3, '0')}`) });
      }
      const first = await app.inject({ url: '/machines?search=page&sort=service_tag', headers: viewer });
      assert.match(first.body, /1–50 of 55/);
      assert.match(first.body, /href="\/machines\?search=page&amp;sort=service_tag&amp;offset=50" rel="next"/);
      const second = await app.inject({ url: '/machines?search=page&sort=service_tag&offset=50', headers: viewer });
      assert.match(second.body, /51–55 of 55/);
      assert.match(second.body, />PAGE054</);
      assert.doesNotMatch(second.body, />PAGE000</);
      const desc = await app.inject({ url: '/machines?search=page&sort=service_tag&order=desc&fragment=table', headers: viewer });
      assert.ok(desc.body.indexOf('>PAGE054<') < desc.body.indexOf('>PAGE053<'));
      assert.doesNotMatch(desc.body, /<html/, 'a fragment is not a page');
      const configured = await app.inject({ url: '/machines?status=configured', headers: viewer });
      assert.doesNotMatch(configured.body, />PAGE001</);
      const junk = await app.inject({ url: '/machines?status=%3Cx%3E&sort=drop&offset=-4', headers: viewer });
      assert.equal(junk.statusCode, 200);
    });

    test('the overview counts machines by status and model', async () => {
      const r = await app.inject({ url: '/', headers: viewer });
      assert.match(r.body, /aria-label="Machines by status: enrolled \d+, configured \d+, building 1, ready 0, failed 0"/);
      assert.match(r.body, /PowerEdge R740/);
      assert.match(r.body, /Recent builds/);
    });

    test('the overview says when the last backup was taken, and warns when there is none or it is old', async () => {
      const stat = async () => {
        const body = (await app.inject({ url: '/', headers: viewer })).body;
        return /<div class="(stat[^"]*)"><div class="stat-value">([^<]*)<\/div><div class="stat-label">Last backup<\/div><div class="stat-note">([^<]*)<\/div>/.exec(body)?.slice(1);
      };
      const settings = t.ctx.storage.settings;
      assert.deepEqual(await stat(), ['stat stat-warn', 'none', 'metal backup (docs/deploy.md)']);
      const threeHoursAgo = new Date(Date.now() - 3 * 3600_000 - 60_000);
      await settings.put(LAST_BACKUP_SETTING, formatBackupRecord({ at: threeHoursAgo, rows: 12345 }), nowIso());
      assert.deepEqual(await stat(), ['stat', '3 h ago', `12,345 rows, ${threeHoursAgo.toISOString().slice(0, 16).replace('T', ' ')} UTC`]);
      await settings.put(LAST_BACKUP_SETTING, formatBackupRecord({ at: new Date(Date.now() - 3 * 86400_000), rows: 1 }), nowIso());
      assert.deepEqual((await stat())?.slice(0, 2), ['stat stat-warn', '3 d ago']);
      await settings.put(LAST_BACKUP_SETTING, '<script>not a record</script>', nowIso());
      assert.deepEqual((await stat())?.slice(0, 2), ['stat stat-warn', 'none']);
    });

    test('unknown machines and builds get an HTML 404 page', async () => {
      const r = await app.inject({ url: '/machines/NOPE', headers: viewer });
      assert.equal(r.statusCode, 404);
      assert.match(r.body, /machine NOPE not found/);
      const b = await app.inject({ url: '/builds/abc', headers: viewer });
      assert.equal(b.statusCode, 400);
    });

    test('the build log streams as server-sent events until the build ends', async () => {
      await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('STREAM1') });
      await t.ctx.machines.update('STREAM1', { hostname: 'stream-1' }, { kind: 'user', name: 'test' });
      const build = await t.ctx.machines.requestBuild('STREAM1', { kind: 'user', name: 'test' });
      const address = await app.listen({ host: '127.0.0.1', port: 0 });
      const abort = AbortSignal.timeout(15_000);
      const res = await fetch(`${address}/builds/${build.id}/stream?offset=0`, { headers: viewer, signal: abort });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      const reader = res.body!.getReader();
      let text = '';
      const readUntil = async (needle: string) => {
        while (!text.includes(needle)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended before ${JSON.stringify(needle)}; got ${text}`);
          text += new TextDecoder().decode(value);
        }
      };
      await readUntil('"status":"pending"');
      await sqlOf(t.ctx).updateTable('builds').set({ status: 'building', started_at: nowIso(), log_output: 'line one\nline <two>\n' }).where('id', '=', build.id).execute();
      t.ctx.notifier.emit('build.updated', build.id);
      await readUntil('event: log\ndata: line one\ndata: line <two>\ndata: \n\n');
      await sqlOf(t.ctx).updateTable('builds').set({ status: 'failed', completed_at: nowIso(), error: 'nix-build exited 1', log_output: 'line one\nline <two>\nerror: boom\n' }).where('id', '=', build.id).execute();
      t.ctx.notifier.emit('build.updated', build.id);
      await readUntil('event: end\ndata: failed');
      assert.match(text, /event: log\ndata: error: boom\n/);
      assert.match(text, /"error":"nix-build exited 1"/);
      const { done } = await reader.read();
      assert.equal(done, true, 'the server closes the stream after the end');
      const head = await app.inject({ method: 'HEAD', url: `/builds/${build.id}/stream`, headers: viewer });
      assert.equal(head.statusCode, 200);
      assert.equal(head.headers['content-type'], 'text/event-stream; charset=utf-8');
    });
  });
}
