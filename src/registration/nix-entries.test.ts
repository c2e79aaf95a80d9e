import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { findExecutable, nixBuildArgs, OFFLINE_NIX_CONFIG, parseNixFile, type NixpkgsPin } from '../builder/nix-build.ts';
import { renderConfigurationNix, writeConfigFiles } from '../builder/build-workspace.ts';
import { AGENT_SCRIPT_PATH } from './agent/agent-runner.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- boot.json and facts.json are parsed JSON */

const STUB_NIXPKGS = fileURLToPath(new URL('./fixtures/stub-nixpkgs', import.meta.url));
const REGISTRATION = fileURLToPath(new URL('../../nix/registration.nix', import.meta.url));
const NETBOOT = fileURLToPath(new URL('../../nix/netboot.nix', import.meta.url));
const NIX_CONFIG = process.env.NIX_CONFIG ?? OFFLINE_NIX_CONFIG;

function haveNix(): boolean {
  if (findExecutable('nix-build') && findExecutable('nix-instantiate')) return true;
  if (process.env.CI === 'true') throw new Error('nix-build is required in CI (apt-get install nix-bin)');
  console.warn('\n*** SKIPPING the Nix entry tests: nix-build is not installed ***\n');
  return false;
}

interface Built {
  code: number;
  output: string;
  bootJson?: any;
  facts?: any;
}

/** nix-build with the builder's own argument array, against the stand-in nixpkgs unless `nixpkgs` says otherwise. */
function build(entry: string, dir: string, o: { configuration: string; hostname?: string; consoles?: string[]; nixpkgs?: NixpkgsPin; env?: Record<string, string> }): Promise<Built> {
  const configurationFile = join(dir, `configuration-${Math.random().toString(36).slice(2)}.nix`);
  writeFileSync(configurationFile, o.configuration);
  const outLink = join(dir, 'result');
  rmSync(outLink, { force: true });
  const args = nixBuildArgs({
    entry,
    configurationFile,
    hostname: o.hostname ?? 'web-01',
    serviceTag: 'ABC123',
    outLink,
    ...(o.consoles ? { consoles: o.consoles } : {}),
    nixpkgs: o.nixpkgs ?? { kind: 'path', path: STUB_NIXPKGS },
  });
  return new Promise((resolve) => {
    execFile('nix-build', args, { env: { ...process.env, NIX_CONFIG, NIX_PATH: '', ...o.env }, timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? Number(err.code ?? 1) : 0;
      if (code !== 0) return resolve({ code, output: stdout + stderr });
      const bootJson = JSON.parse(readFileSync(join(outLink, 'boot.json'), 'utf8'));
      const facts = JSON.parse(readFileSync(join(dirname(bootJson.init), 'facts.json'), 'utf8'));
      resolve({ code, output: stdout + stderr, bootJson, facts });
    });
  });
}

describe('the Nix entries against a stand-in nixpkgs', { skip: !haveNix() }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-nix-entries-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('both entries parse', async () => {
    await parseNixFile(REGISTRATION);
    await parseNixFile(NETBOOT);
  });

  for (const [name, file] of [['registration.nix', REGISTRATION], ['netboot.nix', NETBOOT]] as const) {
    test(`${name}: nixpkgs joined by path concatenation, netboot.nix and the minimal profile only, the kernel file NixOS names`, () => {
      const code = readFileSync(file, 'utf8').split('\n').filter((line) => !line.trim().startsWith('#')).join('\n');
      assert.doesNotMatch(code, /"\$\{(nixpkgs|modulesPath)\}/, 'a string-interpolated path copies nixpkgs into the store');
      assert.match(code, /import \(nixpkgs \+ "\/nixos\/lib\/eval-config\.nix"\)/);
      assert.match(code, /\(modulesPath \+ "\/installer\/netboot\/netboot\.nix"\)/);
      assert.match(code, /\(modulesPath \+ "\/profiles\/minimal\.nix"\)/);
      assert.doesNotMatch(code, /netboot-minimal|netboot-base|installation-device/);
      assert.match(code, /config\.system\.boot\.loader\.kernelFile/);
      assert.doesNotMatch(code, /linux-kernel\.target/);
      assert.match(code, /networking\.hostName = lib\.mkDefault hostname;/);
    });
  }

  test('registration.nix evaluates: immutable users that nobody can log in as, allowed explicitly; no installer profile', async () => {
    const r = await build(REGISTRATION, dir, { configuration: '{ ... }: { }\n', hostname: 'metal-registration' });
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.facts.modules, ['<inline>', 'installer/netboot/netboot.nix', 'profiles/minimal.nix', r.facts.modules[3]]);
    assert.deepEqual(
      [r.facts.mutableUsers, r.facts.allowNoPasswordLogin, r.facts.rootHashedPassword, r.facts.autologinUser, r.facts.openssh, r.facts.documentation],
      [false, true, '!', null, false, false],
    );
    assert.deepEqual(r.bootJson.kernel_params, ['console=tty0', 'console=ttyS0,115200', 'console=ttyS1,115200', 'panic=30', 'loglevel=4']);
    assert.deepEqual(r.bootJson.nixpkgs, { source: STUB_NIXPKGS, sha256: null, version: '24.05.stub', revision: '0123456789abcdef0123456789abcdef01234567' });
    const [execStart] = readFileSync(r.bootJson.init, 'utf8').split('\n');
    assert.equal(readFileSync(execStart!.split(' ')[1]!, 'utf8'), readFileSync(AGENT_SCRIPT_PATH, 'utf8'));
  });

  test('the stand-in really checks: without allowNoPasswordLogin the login assertion of users-groups.nix fails', async () => {
    const copy = join(dir, 'registration-locked-out.nix');
    writeFileSync(copy, readFileSync(REGISTRATION, 'utf8').replace('users.allowNoPasswordLogin = true;', '').replace('../src/registration/agent/metal-agent.sh', AGENT_SCRIPT_PATH));
    const r = await build(copy, dir, { configuration: '{ ... }: { }\n' });
    assert.notEqual(r.code, 0);
    assert.match(r.output, /Neither the root account nor any wheel user has a password or SSH authorized key/);
  });

  test('the stand-in really checks: "${nixpkgs}/..." (a copy of nixpkgs in the store) and netboot-minimal.nix are caught', async () => {
    const interpolated = join(dir, 'netboot-interpolated.nix');
    writeFileSync(interpolated, readFileSync(NETBOOT, 'utf8').replace('import (nixpkgs + "/nixos/lib/eval-config.nix")', 'import "${nixpkgs}/nixos/lib/eval-config.nix"'));
    const copied = await build(interpolated, dir, { configuration: '{ ... }: { }\n' });
    assert.notEqual(copied.code, 0);
    assert.match(copied.output, /evaluated from a copy in the Nix store/);

    const minimal = join(dir, 'netboot-installer.nix');
    writeFileSync(minimal, readFileSync(NETBOOT, 'utf8').replace('(modulesPath + "/installer/netboot/netboot.nix")', '(modulesPath + "/installer/netboot/netboot-minimal.nix")'));
    const installer = await build(minimal, dir, { configuration: '{ ... }: { }\n' });
    assert.equal(installer.code, 0, installer.output);
    assert.ok(installer.facts.modules.includes('profiles/installation-device.nix'));
    assert.equal(installer.facts.autologinUser, 'nixos', 'what the real entry avoids: a console logged in as a passwordless wheel user');
  });

  test('netboot.nix: the builder’s configuration.nix, a machine module that sets its own host name and imports a file', async () => {
    const imports = ['./machine/configuration.nix'];
    rmSync(join(dir, 'machine'), { recursive: true, force: true });
    await writeConfigFiles(dir, 'machine', {
      'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ]; networking.hostName = "own-name"; }\n',
      'hardware.nix': '{ ... }: { boot.kernelParams = [ "nvme_core.default_ps_max_latency_us=0" ]; }\n',
    });
    const r = await build(NETBOOT, dir, { configuration: renderConfigurationNix({ hostname: 'web-01', serviceTag: 'ABC123', imports }), consoles: ['tty0', 'ttyS1,115200'] });
    assert.equal(r.code, 0, r.output);
    assert.equal(r.facts.hostName, 'own-name', 'the machine module wins over the generated default');
    assert.deepEqual(r.bootJson.kernel_params, ['nvme_core.default_ps_max_latency_us=0', 'console=tty0', 'console=ttyS1,115200', 'loglevel=4']);
    assert.ok(r.facts.modules.includes('hardware.nix'));
    assert.ok(!r.facts.modules.some((m: string) => /installation-device|netboot-base/.test(m)), r.facts.modules.join(' '));
    assert.equal(r.facts.autologinUser, null);

    rmSync(join(dir, 'machine'), { recursive: true, force: true });
    await writeConfigFiles(dir, 'machine', { 'configuration.nix': '{ ... }: { services.openssh.enable = true; }\n' });
    const generated = await build(NETBOOT, dir, { configuration: renderConfigurationNix({ hostname: 'web-01', serviceTag: 'ABC123', imports }) });
    assert.equal(generated.code, 0, generated.output);
    assert.equal(generated.facts.hostName, 'web-01');
    assert.deepEqual(generated.bootJson.kernel_params, ['console=tty0', 'console=ttyS0,115200', 'console=ttyS1,115200', 'loglevel=4'], 'the default consoles');
  });

  test('METAL_NIXPKGS as a tarball with its hash: fetched, checked against the hash, recorded in boot.json', async (t) => {
    const tarball = join(dir, 'nixpkgs.tar.gz');
    const tar = spawnSync('tar', ['-czf', tarball, '-C', dirname(STUB_NIXPKGS), 'stub-nixpkgs'], { timeout: 30_000 });
    if (tar.status !== 0) return t.skip(`tar failed: ${tar.stderr}`);
    const hash = spawnSync('nix-hash', ['--type', 'sha256', '--base32', STUB_NIXPKGS], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NIX_CONFIG } });
    assert.equal(hash.status, 0, hash.stderr);
    const sha256 = hash.stdout.trim();
    const url = `file://${tarball}`;
    // The stand-in refuses to run from the store unless told that this is where it was fetched to.
    const env = { METAL_STUB_NIXPKGS_IN_STORE: '1' };
    const r = await build(REGISTRATION, dir, { configuration: '{ ... }: { }\n', nixpkgs: { kind: 'tarball', url, sha256 }, env });
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.bootJson.nixpkgs, { source: url, sha256, version: '24.05.stub', revision: '0123456789abcdef0123456789abcdef01234567' });

    const wrong = await build(REGISTRATION, dir, { configuration: '{ ... }: { }\n', nixpkgs: { kind: 'tarball', url, sha256: '1'.repeat(52) }, env });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.output, /hash mismatch/);
  });
});
