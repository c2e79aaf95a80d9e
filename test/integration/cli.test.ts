import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { enrollmentPayload, macOfTag } from '../support/context.ts';
import { ADMIN_PASSWORD, hasNixBuild, startApiServer, type ApiServer } from '../support/api-server.ts';
import { findScript, runCli, startCli, startCliOnTerminal } from '../support/cli-process.ts';

const STANDIN_ENTRY = new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url).pathname;
const SLOW_ENTRY = new URL('../../src/builder/fixtures/standin-slow.nix', import.meta.url).pathname;
const nix = hasNixBuild();
const script = findScript();

async function enroll(url: string, payload: unknown): Promise<void> {
  const response = await fetch(`${url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  assert.equal(response.status, 201, await response.text());
}

describe('the metal command line against a real server', () => {
  const home = mkdtempSync(join(tmpdir(), 'metal-cli-home-'));
  let metal: ApiServer;
  let url = '';
  let adminToken = '';
  /** The environment of a logged-in operator at a terminal: settings from `metal login`. */
  const loggedIn = { XDG_CONFIG_HOME: home };
  const withToken = () => ({ XDG_CONFIG_HOME: join(home, 'unused'), METAL_URL: url, METAL_TOKEN: adminToken });
  const api = <T>(method: string, path: string, body?: unknown) => metal.api<T>(method, path, body);

  before(async () => {
    metal = await startApiServer(STANDIN_ENTRY);
    url = metal.url;
    adminToken = metal.adminToken;
    const cli001 = enrollmentPayload('CLI001');
    await enroll(url, { ...cli001, hardware: { ...cli001.hardware, nics: cli001.hardware.nics.map((n) => ({ ...n, lldp: { system_name: 'leaf-r12-a', port_id: 'Ethernet12' } })) } });
    await enroll(url, enrollmentPayload('CLI002'));
    const qemu = enrollmentPayload('CLI003', { mac_address: '52:54:00:00:00:03' });
    qemu.hardware.manufacturer = 'QEMU';
    qemu.hardware.model = 'Standard PC (Q35 + ICH9, 2009)';
    await enroll(url, qemu);
  });

  after(async () => {
    await metal?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('login with --password-stdin saves the server and a token, readable by the owner only', async () => {
    const r = await runCli(['login', '--url', url, '--user', 'admin', '--password-stdin'], loggedIn, { input: `${ADMIN_PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /logged in to http:\/\/127\.0\.0\.1:\d+ as admin/);
    const file = join(home, 'metal', 'config.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, 'metal')).mode & 0o777, 0o700);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { url: string; token: string };
    assert.equal(saved.url, url);
    assert.match(saved.token, /^ms_/);
  });

  test('a wrong password is refused with the API’s message and saves nothing new', async () => {
    const before = readFileSync(join(home, 'metal', 'config.json'), 'utf8');
    const r = await runCli(['login', '--url', url, '--user', 'admin', '--password-stdin'], loggedIn, { input: 'not the password\n' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^metal: login failed: /);
    assert.equal(readFileSync(join(home, 'metal', 'config.json'), 'utf8'), before);
  });

  test('machines ls is an aligned table, and --json is exactly the API’s response', async () => {
    const [table, json] = await Promise.all([runCli(['machines', 'ls'], loggedIn), runCli(['machines', 'ls', '--json'], loggedIn)]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SERVICE TAG +HOSTNAME +STATUS +MAC +MODEL +LAST SEEN$/);
    assert.equal(lines.length, 4);
    const statusColumn = lines[0]!.indexOf('STATUS');
    for (const line of lines.slice(1)) assert.equal(line.slice(statusColumn, statusColumn + 8), 'enrolled', line);
    assert.ok(!table.stdout.includes('\u001b'), 'no colour when stdout is not a terminal');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), await api('GET', '/api/v1/machines'));
  });

  test('on a terminal: the password is asked for without echo, and statuses are coloured', { skip: !script }, async () => {
    const terminalHome = mkdtempSync(join(tmpdir(), 'metal-cli-tty-'));
    try {
      const env = { XDG_CONFIG_HOME: terminalHome, TERM: 'dumb' };
      const login = startCliOnTerminal(script!, ['login', '--url', url, '--user', 'admin'], env);
      await login.waitForStdout(/password for admin at http:\/\/127\.0\.0\.1:\d+: /);
      login.type(`${ADMIN_PASSWORD}\r`);
      const r = await login.finished;
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.stdout, /logged in to http:\/\/127\.0\.0\.1:\d+ as admin/);
      assert.ok(!r.stdout.includes(ADMIN_PASSWORD), `the password is echoed: ${JSON.stringify(r.stdout)}`);
      const coloured = await startCliOnTerminal(script!, ['machines', 'ls'], env).finished;
      assert.ok(coloured.stdout.includes('\u001b[36menrolled\u001b[0m'), coloured.stdout);
      const plain = await startCliOnTerminal(script!, ['machines', 'ls'], { ...env, NO_COLOR: '1' }).finished;
      assert.ok(!plain.stdout.includes('\u001b[') && plain.stdout.includes('enrolled'), plain.stdout);
    } finally {
      rmSync(terminalHome, { recursive: true, force: true });
    }
  });

  test('machines ls filters by status and search', async () => {
    const r = await runCli(['machines', 'ls', '--search', 'CLI002', '--status', 'enrolled', '--json'], loggedIn);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { items: Array<{ service_tag: string }>; total: number };
    assert.deepEqual(list.items.map((m) => m.service_tag), ['CLI002']);
    const bad = await runCli(['machines', 'ls', '--status', 'sleeping'], loggedIn);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /argument 'sleeping' is invalid\. Allowed choices are enrolled, configured/);
  });

  test('machines set saves the hostname and a configuration from a file; show displays them', async () => {
    const file = join(home, 'web-01.nix');
    // A fresh comment each run, so Nix really builds (and logs) instead of reusing an earlier result.
    writeFileSync(file, `# cli test ${randomUUID()}\n{ config, ... }: {\n  services.openssh.enable = true;\n}\n`);
    const set = await runCli(['machines', 'set', 'CLI001', '--hostname', 'web-01', '--config', file], loggedIn);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /CLI001: hostname, configuration saved; status configured/);
    const machine = await api<{ hostname: string; nixos_config: string; status: string }>('GET', '/api/v1/machines/CLI001');
    assert.equal(machine.hostname, 'web-01');
    assert.equal(machine.nixos_config, readFileSync(file, 'utf8'));
    assert.equal(machine.status, 'configured');

    const [show, json] = await Promise.all([runCli(['machines', 'show', 'CLI001'], loggedIn), runCli(['machines', 'show', 'CLI001', '--json'], withToken())]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^hostname: +web-01$/m);
    assert.match(show.stdout, /^hardware: +Dell Inc\. PowerEdge R740$/m);
    assert.match(show.stdout, /^cabled to: +eno1: leaf-r12-a Ethernet12$/m);
    assert.match(show.stdout, /^ {4}services\.openssh\.enable = true;$/m);
    assert.deepEqual(JSON.parse(json.stdout), await api('GET', '/api/v1/machines/CLI001'));
    const events = await runCli(['machines', 'events', 'CLI001'], loggedIn);
    assert.match(events.stdout, /^TIME +KIND +ACTOR +MESSAGE$/m);
    assert.match(events.stdout, / machine\.\S+ +user:admin /);
  });

  test('an unknown tag fails with the API’s message', async () => {
    const r = await runCli(['machines', 'show', 'NOPE42'], loggedIn);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'metal: machine NOPE42 not found\n');
  });

  test('invalid input is refused and changes nothing', async () => {
    const r = await runCli(['machines', 'set', 'CLI002', '--hostname', 'not a hostname!'], loggedIn);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^metal: .*hostname/);
    assert.equal((await api<{ hostname: string | null }>('GET', '/api/v1/machines/CLI002')).hostname, null);
    const nothing = await runCli(['machines', 'set', 'CLI002'], loggedIn);
    assert.equal(nothing.code, 1);
    assert.equal(nothing.stderr, 'metal: nothing to change: give --hostname, --description, --profile or --config\n');
  });

  test('an identity conflict is shown with the command that settles it; identity reject settles it; events finds the record', async () => {
    const claim = { ...enrollmentPayload('CLI002'), mac_address: '52:54:00:00:0c:02' };
    const response = await fetch(`${url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claim) });
    assert.equal(response.status, 409, await response.text());
    const shown = await runCli(['machines', 'show', 'CLI002'], loggedIn);
    assert.match(shown.stdout, /identity conflict: .*\(settle it: metal machines identity CLI002 accept\|reject\)/);
    const bad = await runCli(['machines', 'identity', 'CLI002', 'maybe'], loggedIn);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /value 'maybe' is invalid for argument 'decision'\. Allowed choices are accept, reject/);
    const rejected = await runCli(['machines', 'identity', 'CLI002', 'reject'], loggedIn);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.match(rejected.stdout, /^CLI002: identity rejected; its MAC is /);
    assert.equal((await api<{ identity_conflict: unknown }>('GET', '/api/v1/machines/CLI002')).identity_conflict, null);
    const events = await runCli(['events', '--machine', 'CLI002', '--kind', 'machine.identity_rejected'], loggedIn);
    assert.equal(events.code, 0, events.stderr);
    const lines = events.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME +KIND +ACTOR +MACHINE +MESSAGE$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /machine\.identity_rejected +user:admin/);
    const json = await runCli(['events', '--kind', 'machine.identity_rejected', '--json'], loggedIn);
    assert.deepEqual(JSON.parse(json.stdout), await api('GET', '/api/v1/events?kind=machine.identity_rejected&limit=50'));
    const none = await runCli(['events', '--kind', 'no.such.kind'], loggedIn);
    assert.equal(none.code, 0);
    assert.equal(none.stderr, 'no events match\n');
  });

  test("set --hostname '' clears a hostname, as an empty field does on the dashboard", async () => {
    assert.equal((await runCli(['machines', 'set', 'CLI003', '--hostname', 'qemu-03'], loggedIn)).code, 0);
    assert.equal((await api<{ hostname: string | null }>('GET', '/api/v1/machines/CLI003')).hostname, 'qemu-03');
    const cleared = await runCli(['machines', 'set', 'CLI003', '--hostname', ''], loggedIn);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal((await api<{ hostname: string | null }>('GET', '/api/v1/machines/CLI003')).hostname, null);
  });

  test('a bad token gets a message that says to log in', async () => {
    const r = await runCli(['machines', 'ls'], { XDG_CONFIG_HOME: join(home, 'unused'), METAL_URL: url, METAL_TOKEN: 'mt_not_a_real_token' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'metal: not logged in or token expired: run metal login\n');
  });

  test('builders lists the running builder; --json is the API\'s response', async () => {
    const [table, json] = await Promise.all([runCli(['builders'], loggedIn), runCli(['builders', '--json'], loggedIn)]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME +STATE +BUILDS +BOOT CHECK +SECURE BOOT +STARTED +LAST SEEN$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /^\S+-\d+ +live +0\/1 +off +- +\d{4}-/);
    assert.equal(table.stderr, '');
    const listed = JSON.parse(json.stdout) as { items: Array<{ name: string; last_seen_at: string }> };
    const fromApi = await api<{ items: Array<{ name: string }> }>('GET', '/api/v1/builders');
    assert.deepEqual(listed.items.map((b) => b.name), fromApi.items.map((b) => b.name));
  });

  test('build --wait streams the log and exits 0 when the image is built', { skip: !nix }, async () => {
    const r = await runCli(['build', 'CLI001', '--wait'], loggedIn, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /no builder is running/, 'a builder runs here');
    assert.match(r.stdout, /stand-in: building image for web-01 \(CLI001\)/);
    assert.match(r.stderr, /metal: build \d+ requested for CLI001/);
    assert.match(r.stderr, /metal: build \d+ success/);
    const machine = await api<{ status: string; last_build_id: number }>('GET', '/api/v1/machines/CLI001');
    assert.equal(machine.status, 'ready');
    const shown = await runCli(['builds', 'show', String(machine.last_build_id), '--json'], loggedIn);
    assert.deepEqual(JSON.parse(shown.stdout), await api('GET', `/api/v1/builds/${machine.last_build_id}`));
  });

  test('machines set --config DIR sends every allowed file; config --export writes them back; the build uses them', async () => {
    const dir = join(home, 'web-01');
    mkdirSync(join(dir, 'modules'), { recursive: true });
    const marker = `cli-files-${randomUUID()}`;
    writeFileSync(join(dir, 'configuration.nix'), `# ${marker}\n{ ... }: {\n  imports = [ ./hardware.nix ./modules/ssh.nix ];\n}\n`);
    writeFileSync(join(dir, 'hardware.nix'), '{ ... }: { boot.initrd.availableKernelModules = [ "nvme" ]; }\n');
    writeFileSync(join(dir, 'modules', 'ssh.nix'), '{ ... }: { services.openssh.enable = true; }\n');
    writeFileSync(join(dir, 'NOTES.md'), 'not sent');
    const set = await runCli(['machines', 'set', 'CLI001', '--config', dir], loggedIn);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /CLI001: configuration \(3 files\) saved; status ready/);
    assert.match(set.stderr, /metal: left out NOTES\.md \(the name must end in one of/);
    const machine = await api<{ nixos_files: Record<string, string> }>('GET', '/api/v1/machines/CLI001');
    assert.deepEqual(Object.keys(machine.nixos_files), ['configuration.nix', 'hardware.nix', 'modules/ssh.nix']);
    assert.equal(machine.nixos_files['modules/ssh.nix'], readFileSync(join(dir, 'modules', 'ssh.nix'), 'utf8'));

    const out = join(home, 'exported');
    const exported = await runCli(['machines', 'config', 'CLI001', '--export', out], loggedIn);
    assert.equal(exported.code, 0, exported.stderr);
    for (const name of ['configuration.nix', 'hardware.nix', 'modules/ssh.nix']) assert.equal(readFileSync(join(out, name), 'utf8'), machine.nixos_files[name], name);
    const printed = await runCli(['machines', 'config', 'CLI001'], loggedIn);
    assert.match(printed.stdout, /^# ==> hardware\.nix <==\n\{ \.\.\. \}: \{ boot\.initrd/m);
    const show = await runCli(['machines', 'show', 'CLI001'], loggedIn);
    assert.match(show.stdout, /^nixos configuration \(3 files; metal machines config CLI001 --export DIR\):$/m);
    assert.match(show.stdout, /^ {2}modules\/ssh\.nix:$/m);

    symlinkSync('/etc/hostname', join(dir, 'leak.nix'));
    const leaky = await runCli(['machines', 'set', 'CLI001', '--config', dir], loggedIn);
    assert.equal(leaky.code, 1);
    assert.match(leaky.stderr, /leak\.nix is a symlink to \/etc\/hostname, outside/);
    rmSync(join(dir, 'leak.nix'));

    if (!nix) return;
    const built = await runCli(['build', 'CLI001', '--wait'], loggedIn, { timeoutMs: 120_000 });
    assert.equal(built.code, 0, built.stderr);
    const ls = await runCli(['builds', 'ls', 'CLI001'], loggedIn);
    assert.match(ls.stdout, /^ID +STATUS +HOSTNAME +CREATED +DURATION +NIXPKGS +ERROR$/m);
    const last = (await api<{ last_build_id: number }>('GET', '/api/v1/machines/CLI001')).last_build_id;
    const shown = await runCli(['builds', 'show', String(last)], loggedIn);
    assert.match(shown.stdout, /^files: +configuration\.nix, hardware\.nix, modules\/ssh\.nix$/m);
    assert.match(shown.stdout, /^nixpkgs: +unknown \(the entry recorded none\)$/m);
    assert.match(shown.stdout, /^boot check: +-$/m, 'not checked (METAL_BUILD_BOOT_CHECK is off)');
  });

  test('a failing build exits non-zero with the build’s error', { skip: !nix }, async () => {
    const set = await runCli(['machines', 'set', 'CLI002', '--hostname', 'broken-01', '--config', '-'], loggedIn, {
      input: '{ config, ... }: throw "metal-cli-test: this configuration is broken on purpose"\n',
    });
    assert.equal(set.code, 0, set.stderr);
    const r = await runCli(['build', 'CLI002', '--wait'], loggedIn, { timeoutMs: 120_000 });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /metal: build \d+ failed: .*broken on purpose/);
    assert.equal((await api<{ status: string }>('GET', '/api/v1/machines/CLI002')).status, 'failed');
  });

  test('the Ansible inventory parses as JSON with groups by status, vendor and model', { skip: !nix }, async () => {
    const [list, host] = await Promise.all([runCli(['inventory', '--list'], loggedIn), runCli(['inventory', '--host', 'web-01'], loggedIn)]);
    assert.equal(list.code, 0, list.stderr);
    const inventory = JSON.parse(list.stdout) as Record<string, { hosts?: string[]; children?: string[]; hostvars?: Record<string, Record<string, unknown>> }>;
    assert.deepEqual(Object.keys(inventory._meta!.hostvars!).sort(), ['CLI003', 'broken-01', 'web-01']);
    assert.deepEqual(inventory.status_ready, { hosts: ['web-01'] });
    assert.deepEqual(inventory.status_failed, { hosts: ['broken-01'] });
    assert.deepEqual(inventory.status_enrolled, { hosts: ['CLI003'] });
    assert.deepEqual(inventory.vendor_dell_inc, { hosts: ['web-01', 'broken-01'] });
    assert.deepEqual(inventory.vendor_qemu, { hosts: ['CLI003'] });
    assert.deepEqual(inventory.model_standard_pc_q35_ich9_2009, { hosts: ['CLI003'] });
    assert.ok(inventory.all!.children!.includes('model_poweredge_r740'));
    const vars = JSON.parse(host.stdout) as Record<string, unknown>;
    assert.equal(vars.service_tag, 'CLI001');
    assert.equal(vars.status, 'ready');
    assert.equal(vars.mac, macOfTag('CLI001'));
    assert.equal(vars.memory, 412316860416);
  });

  test('tokens: create one for a script, use it, revoke it', async () => {
    const created = await runCli(['tokens', 'create', 'ci', '--role', 'viewer', '--expires', '30', '--json'], loggedIn);
    assert.equal(created.code, 0, created.stderr);
    const token = JSON.parse(created.stdout) as { id: number; token: string; role: string; expires_at: string };
    assert.equal(token.role, 'viewer');
    assert.ok(Date.parse(token.expires_at) > Date.now() + 29 * 86_400_000);
    const env = { XDG_CONFIG_HOME: join(home, 'unused'), METAL_URL: url, METAL_TOKEN: token.token };
    const [me, denied, listed] = await Promise.all([
      runCli(['whoami'], env),
      runCli(['machines', 'rm', 'CLI003', '--yes'], env),
      runCli(['tokens', 'ls'], loggedIn),
    ]);
    assert.equal(me.stdout, `admin (viewer, token) at ${url}\n`);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^metal: this needs the operator role/);
    assert.match(listed.stdout, new RegExp(`^${token.id} +ci +admin +viewer `, 'm'));
    const rm = await runCli(['tokens', 'rm', String(token.id)], loggedIn);
    assert.equal(rm.code, 0, rm.stderr);
    const after = await runCli(['machines', 'ls'], env);
    assert.equal(after.stderr, 'metal: not logged in or token expired: run metal login\n');
  });

  test('users: add, set-role, list and remove through the API', async () => {
    const add = await runCli(['users', 'add', 'alice', '--role', 'viewer', '--password-stdin'], loggedIn, { input: 'alice password 123\n' });
    assert.equal(add.code, 0, add.stderr);
    const role = await runCli(['users', 'set-role', 'alice', 'operator'], loggedIn);
    assert.equal(role.stdout, 'user alice is now operator\n');
    const ls = await runCli(['users', 'ls', '--json'], withToken());
    assert.deepEqual(JSON.parse(ls.stdout), await api('GET', '/api/v1/users'));
    const rm = await runCli(['users', 'rm', 'alice', '--yes'], loggedIn);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, 'user alice removed\n');
    assert.deepEqual((await api<{ items: Array<{ username: string }> }>('GET', '/api/v1/users')).items.map((u) => u.username), ['admin']);
  });

  test('machines rm removes a machine; without --yes and no terminal it refuses', async () => {
    const refused = await runCli(['machines', 'rm', 'CLI003'], loggedIn);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not removing CLI003 without --yes/);
    const rm = await runCli(['machines', 'rm', 'CLI003', '--yes'], loggedIn);
    assert.equal(rm.code, 0, rm.stderr);
    const res = await fetch(`${url}/api/v1/machines/CLI003`, { headers: { authorization: `Bearer ${adminToken}` } });
    assert.equal(res.status, 404);
  });

  test('logout ends the session and forgets the token', async () => {
    const saved = JSON.parse(readFileSync(join(home, 'metal', 'config.json'), 'utf8')) as { token: string };
    const r = await runCli(['logout'], loggedIn);
    assert.equal(r.code, 0, r.stderr);
    const now = JSON.parse(readFileSync(join(home, 'metal', 'config.json'), 'utf8')) as { url: string; token?: string };
    assert.equal(now.url, url);
    assert.equal(now.token, undefined);
    const old = await fetch(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${saved.token}` } });
    assert.equal(old.status, 401);
    const ls = await runCli(['machines', 'ls'], loggedIn);
    assert.equal(ls.stderr, 'metal: not logged in or token expired: run metal login\n');
  });
});

describe('metal build --wait on a build that is cancelled', { skip: !nix }, () => {
  let metal: ApiServer;
  let env: Record<string, string>;

  before(async () => {
    metal = await startApiServer(SLOW_ENTRY);
    env = { METAL_URL: metal.url, METAL_TOKEN: metal.adminToken, XDG_CONFIG_HOME: join(tmpdir(), 'metal-cli-unused') };
    await enroll(metal.url, enrollmentPayload('SLOW01'));
    await metal.api('PUT', '/api/v1/machines/SLOW01', { hostname: 'slow-01', nixos_config: `# ${randomUUID()}\n{ ... }: { }\n` });
  });
  after(() => metal?.stop());

  test('streams the log while the build runs, and exits non-zero once it is cancelled', async () => {
    const waiting = startCli(['build', 'SLOW01', '--wait'], env, { timeoutMs: 120_000 });
    await waiting.waitForStdout(/stand-in: working 1\n/);
    const id = /build (\d+) requested/.exec(waiting.output().stderr)?.[1];
    assert.ok(id, waiting.output().stderr);
    const cancel = await runCli(['builds', 'cancel', id], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, `build ${id} cancelled\n`);
    const r = await waiting.finished;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`metal: build ${id} cancelled`));
    assert.match(r.stdout, /stand-in: slow build for slow-01/);
  });
});

describe('the metal command line against a server with no builder', () => {
  const home = mkdtempSync(join(tmpdir(), 'metal-cli-nobuilder-'));
  let metal: ApiServer;
  before(async () => {
    metal = await startApiServer(STANDIN_ENTRY, {}, ['api']);
    await enroll(metal.url, enrollmentPayload('NOB001'));
  });
  after(async () => {
    await metal?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('build says the build will wait, and builders says none runs', async () => {
    const env = { XDG_CONFIG_HOME: home, METAL_URL: metal.url, METAL_TOKEN: metal.adminToken };
    await metal.api('PUT', '/api/v1/machines/NOB001', { hostname: 'nob-01' });
    const requested = await runCli(['build', 'NOB001'], env);
    assert.equal(requested.code, 0, requested.stderr);
    assert.match(requested.stdout, /^build \d+ requested for NOB001 \(pending\)/);
    assert.equal(requested.stderr, 'metal: note: no builder is running; builds wait until one starts (metal builder, or metal serve on a host with Nix; docs/builder.md)\n');
    const builders = await runCli(['builders'], env);
    assert.equal(builders.code, 0, builders.stderr);
    assert.equal(builders.stdout, '');
    assert.match(builders.stderr, /^no builder is running; builds wait until one starts/);
  });

  test('passwd changes your own password: a wrong current one changes nothing, then the new one signs in and the old does not', async () => {
    const env = { XDG_CONFIG_HOME: home, METAL_URL: metal.url, METAL_TOKEN: metal.adminToken };
    const wrong = await runCli(['passwd', '--password-stdin'], env, { input: 'not-the-password\nnew-password-0123\n' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^metal: .*current password/i);
    const short = await runCli(['passwd', '--password-stdin'], env, { input: `${ADMIN_PASSWORD}\n` });
    assert.equal(short.code, 1);
    assert.equal(short.stderr, 'metal: give the current password and the new one on standard input, a line each\n');
    const changed = await runCli(['passwd', '--password-stdin', '--keep-tokens'], env, { input: `${ADMIN_PASSWORD}\nnew-password-0123\n` });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(changed.stderr, 'metal: password changed\n');
    const login = (password: string) => runCli(['login', '--url', metal.url, '--user', 'admin', '--password-stdin'], { XDG_CONFIG_HOME: home }, { input: `${password}\n` });
    assert.equal((await login(ADMIN_PASSWORD)).code, 1, 'the old password no longer signs in');
    assert.equal((await login('new-password-0123')).code, 0, 'the new one does');
  });
});
