import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CONFIG_KEYS, loadConfig } from '../../src/config/config.ts';
import { OFFLINE_NIX_CONFIG, findExecutable } from '../../src/builder/nix-build.ts';
import { unitCapabilities } from '../support/unit-privileges.ts';

const MODULE = fileURLToPath(new URL('../../nix/module.nix', import.meta.url));
const EVAL = fileURLToPath(new URL('./nix/eval-module.nix', import.meta.url));

function nixSkipReason(): string | undefined {
  if (findExecutable('nix-instantiate')) return undefined;
  const reason = 'nix-instantiate is not installed (Debian package nix-bin)';
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING NixOS module checks: ${reason} ***\n`);
  return reason;
}
const skip = nixSkipReason();

interface Evaluated {
  options: string[];
  services: Record<
    string,
    {
      user: string;
      execStart: string;
      credentials: string[];
      environment: Record<string, string>;
      requires: string[];
      start: string;
      path: string[];
      groups: string[];
      capabilities: string[];
      boundingSet: string[] | null;
      addressFamilies: string[];
    }
  >;
  timers: Record<string, { onCalendar: string; wantedBy: string[] }>;
  users: string[];
  tmpfiles: string[];
  failedAssertions: string[];
  firewall: number[];
  firewallUdp: number[];
  firewallInterfaces: Record<string, { allowedUDPPorts?: number[] }>;
}

const nixEnv = { ...process.env, NIX_CONFIG: OFFLINE_NIX_CONFIG };

/** Evaluates the module with these option values (see test/deploy/nix/eval-module.nix). */
function evaluate(options: Record<string, unknown>, packagePath?: string): Evaluated {
  const args = ['--eval', '--strict', '--json', '--read-write-mode', EVAL, '--argstr', 'settings', JSON.stringify(options)];
  if (packagePath) args.push('--argstr', 'packagePath', packagePath);
  const result = spawnSync('nix-instantiate', args, { encoding: 'utf8', timeout: 60_000, env: nixEnv });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Evaluated;
}

describe('the NixOS module (nix/module.nix)', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'metal-nixos-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  test('parses', { timeout: 60_000 }, () => {
    const result = spawnSync('nix-instantiate', ['--parse', MODULE], { encoding: 'utf8', timeout: 60_000, env: nixEnv });
    assert.equal(result.status, 0, result.stderr);
  });

  test('all roles: api and boot in one unit as metal, the builder in its own as metal-builder through the Nix daemon', { timeout: 60_000 }, () => {
    const e = evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key', settings: { METAL_BOOT_URL: 'http://10.0.0.5:8081', METAL_BUILD_CONCURRENCY: 2 } });
    assert.deepEqual(e.failedAssertions, []);
    assert.deepEqual(Object.keys(e.services).sort(), ['metal-enrollment', 'metal-enrollment-builder', 'metal-enrollment-migrate']);
    const server = e.services['metal-enrollment']!;
    assert.equal(server.user, 'metal');
    assert.match(server.execStart, / serve --roles api,boot$/);
    assert.deepEqual(server.requires, ['metal-enrollment-migrate.service']);
    const builder = e.services['metal-enrollment-builder']!;
    assert.equal(builder.user, 'metal-builder');
    assert.match(builder.execStart, / builder$/);
    assert.equal(builder.environment.NIX_REMOTE, 'daemon');
    assert.match(builder.environment.NIX_PATH!, /^nixpkgs=/);
    assert.match(e.services['metal-enrollment-migrate']!.execStart, / migrate$/);
    assert.deepEqual(e.users.sort(), ['metal', 'metal-builder']);
    assert.ok(e.tmpfiles.includes('d /var/lib/metal-enrollment/images 2770 metal metal -'));
    for (const s of Object.values(e.services)) {
      assert.deepEqual(s.credentials, ['secret-key:/run/secrets/metal-key'], 'the key file is a credential, not in the store');
      const metalSettings = Object.fromEntries(Object.entries(s.environment).filter(([k]) => k.startsWith('METAL_')));
      for (const key of Object.keys(metalSettings)) assert.ok((CONFIG_KEYS as readonly string[]).includes(key), key);
      const config = loadConfig(metalSettings);
      assert.equal(config.buildConcurrency, 2);
      assert.equal(config.imagesDir, '/var/lib/metal-enrollment/images');
    }
  });

  test('with METAL_BUILD_BOOT_CHECK the builder unit gets QEMU on its PATH and the kvm group; without it, neither', { timeout: 60_000 }, () => {
    const checked = evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key', settings: { METAL_BUILD_BOOT_CHECK: 'booted' } });
    const builder = checked.services['metal-enrollment-builder']!;
    assert.deepEqual(builder.path, ['/nix/store/nix', '/nix/store/util-linux', '/nix/store/qemu-kvm']);
    assert.deepEqual(builder.groups, ['kvm']);
    assert.equal(loadConfig(builder.environment).buildBootCheck, 'booted');
    assert.deepEqual(checked.services['metal-enrollment']!.groups, [], 'only the builder');
    const plain = evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key' }).services['metal-enrollment-builder']!;
    assert.deepEqual(plain.path, ['/nix/store/nix', '/nix/store/util-linux']);
    assert.deepEqual(plain.groups, []);
    const off = evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key', settings: { METAL_BUILD_BOOT_CHECK: 'off' } }).services['metal-enrollment-builder']!;
    assert.deepEqual(off.groups, []);
  });

  test('with METAL_SECURE_BOOT_KEY the server and builder units get sbsign on their PATH', { timeout: 60_000 }, () => {
    const keys = mkdtempSync(join(tmpdir(), 'metal-module-sb-'));
    try {
      const key = join(keys, 'db.key');
      const cert = join(keys, 'db.pem');
      spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=module test', '-days', '1'], { stdio: 'ignore', timeout: 60_000 });
      const e = evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key', settings: { METAL_SECURE_BOOT_KEY: key, METAL_SECURE_BOOT_CERT: cert } });
      assert.deepEqual(e.services['metal-enrollment']!.path, ['/nix/store/sbsigntool']);
      assert.deepEqual(e.services['metal-enrollment-builder']!.path, ['/nix/store/nix', '/nix/store/util-linux', '/nix/store/sbsigntool']);
      assert.deepEqual(loadConfig(e.services['metal-enrollment']!.environment).secureBoot, { key, cert });
      assert.deepEqual(evaluate({ enable: true, secretKeyFile: '/run/secrets/metal-key' }).services['metal-enrollment']!.path, []);
    } finally {
      rmSync(keys, { recursive: true, force: true });
    }
  });

  test('the builder beside other roles without a shared key file is refused with a message', { timeout: 60_000 }, () => {
    const e = evaluate({ enable: true });
    assert.equal(e.failedAssertions.length, 1);
    assert.match(e.failedAssertions[0]!, /set secretKeyFile/);
  });

  test('a boot-only machine runs one unit, no builder, and can open its ports', { timeout: 60_000 }, () => {
    const e = evaluate({ enable: true, roles: ['boot'], openFirewall: true });
    assert.deepEqual(e.failedAssertions, []);
    assert.deepEqual(Object.keys(e.services).sort(), ['metal-enrollment', 'metal-enrollment-migrate']);
    assert.match(e.services['metal-enrollment']!.execStart, / serve --roles boot$/);
    assert.deepEqual(e.users, ['metal']);
    assert.deepEqual(e.firewall, [8080, 8081]);
  });

  test('the pxe role: a unit of its own as metal with CAP_NET_BIND_SERVICE alone, nixpkgs\' iPXE, UDP 67, 69 and 4011 open on the provisioning interface', { timeout: 60_000 }, () => {
    const e = evaluate({ enable: true, roles: ['boot', 'pxe'], openFirewall: true, settings: { METAL_PROXYDHCP_INTERFACE: 'eno2', METAL_BOOT_URL: 'http://10.0.0.5:8081' } });
    assert.deepEqual(e.failedAssertions, []);
    assert.deepEqual(Object.keys(e.services).sort(), ['metal-enrollment', 'metal-enrollment-migrate', 'metal-enrollment-pxe']);
    assert.match(e.services['metal-enrollment']!.execStart, / serve --roles boot$/, 'the pxe role is not in the server unit');
    const pxe = e.services['metal-enrollment-pxe']!;
    assert.equal(pxe.user, 'metal');
    assert.match(pxe.execStart, / serve --roles pxe$/);
    assert.deepEqual(pxe.requires, ['metal-enrollment-migrate.service']);
    // What deploy/systemd/metal-pxe.service grants, and test/deploy/pxe-privileges.test.ts proves enough.
    assert.deepEqual(pxe.capabilities, unitCapabilities('metal-pxe.service'));
    assert.deepEqual(pxe.boundingSet, ['CAP_NET_BIND_SERVICE']);
    assert.ok(pxe.addressFamilies.includes('AF_NETLINK'), 'the role reads the interface address over netlink');
    assert.deepEqual(e.services['metal-enrollment']!.capabilities, [], 'no other unit gets a capability');
    const config = loadConfig(Object.fromEntries(Object.entries(pxe.environment).filter(([k]) => k.startsWith('METAL_'))));
    assert.equal(config.proxyDhcpInterface, 'eno2');
    assert.equal(config.ipxeDir, '/nix/store/ipxe', 'nixpkgs\' ipxe, not /usr/lib/ipxe');
    assert.equal(loadConfig(Object.fromEntries(Object.entries(e.services['metal-enrollment']!.environment).filter(([k]) => k.startsWith('METAL_')))).ipxeDir, '/nix/store/ipxe', 'the boot role serves the same at /ipxe/');
    assert.deepEqual(e.firewallInterfaces, { eno2: { allowedUDPPorts: [67, 69, 4011] } });
    assert.deepEqual(e.firewallUdp, []);
    // Without an interface: TFTP only, for a site DHCP server that names the boot file.
    const tftpOnly = evaluate({ enable: true, roles: ['pxe'], openFirewall: true });
    assert.deepEqual(tftpOnly.firewallUdp, [69]);
    assert.deepEqual(tftpOnly.firewallInterfaces, {});
    assert.deepEqual(Object.keys(tftpOnly.services).sort(), ['metal-enrollment-migrate', 'metal-enrollment-pxe']);
    // Closed unless asked; a METAL_IPXE_DIR of the site's wins.
    const closed = evaluate({ enable: true, roles: ['pxe'], settings: { METAL_PROXYDHCP_INTERFACE: 'eno2', METAL_IPXE_DIR: '/srv/ipxe' } });
    assert.deepEqual(closed.firewallInterfaces, { eno2: { allowedUDPPorts: [] } });
    assert.equal(closed.services['metal-enrollment-pxe']!.environment.METAL_IPXE_DIR, '/srv/ipxe');
  });

  test('backups: none unless backupDir is set; then a daily unit runs metal backup into it, keeping backupKeep', { timeout: 60_000 }, () => {
    const none = evaluate({ enable: true, roles: ['api'] });
    assert.deepEqual(none.timers, {});
    assert.equal(none.services['metal-enrollment-backup'], undefined);
    const e = evaluate({ enable: true, roles: ['api'], backupDir: '/var/backups/metal', backupKeep: 30 });
    assert.deepEqual(e.failedAssertions, []);
    assert.deepEqual(e.timers, { 'metal-enrollment-backup': { onCalendar: 'daily', wantedBy: ['timers.target'] } });
    const backup = e.services['metal-enrollment-backup']!;
    assert.equal(backup.user, 'metal');
    assert.match(backup.execStart, / backup \/var\/backups\/metal --keep 30$/);
    assert.ok(e.tmpfiles.includes('d /var/backups/metal 0700 metal metal -'));
    assert.equal(loadConfig(Object.fromEntries(Object.entries(backup.environment).filter(([k]) => k.startsWith('METAL_')))).dataDir, '/var/lib/metal-enrollment');
    for (const bad of [{ backupDir: 'relative/dir' }, { backupDir: '/var/backups/with space' }, { backupDir: '/var/backups/metal', backupKeep: 0 }]) {
      const refused = evaluate({ enable: true, roles: ['api'], ...bad });
      assert.equal(refused.failedAssertions.length, 1, JSON.stringify(bad));
      assert.match(refused.failedAssertions[0]!, /backupDir must be an absolute path/);
    }
  });

  test('secret files reach metal as settings, read from the unit\'s credentials at start', { timeout: 60_000 }, () => {
    // A stand-in package whose bin/metal prints what it was given.
    const pkg = join(work, 'package');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    writeFileSync(join(pkg, 'bin', 'metal'), '#!/bin/sh\necho "key=$METAL_SECRET_KEY url=$METAL_DATABASE_URL args=$*"\n');
    chmodSync(join(pkg, 'bin', 'metal'), 0o755);
    const e = evaluate({ enable: true, roles: ['api'], secretKeyFile: '/run/keys/k', databaseUrlFile: '/run/keys/db' }, pkg);
    const server = e.services['metal-enrollment']!;
    assert.deepEqual(server.credentials.sort(), ['database-url:/run/keys/db', 'secret-key:/run/keys/k']);
    const credentials = join(work, 'credentials');
    mkdirSync(credentials, { recursive: true });
    writeFileSync(join(credentials, 'secret-key'), 'ab'.repeat(32));
    writeFileSync(join(credentials, 'database-url'), 'postgres://metal:pw@db/metal');
    const script = join(work, 'start.sh');
    writeFileSync(script, server.start);
    const run = spawnSync('sh', [script, 'serve', '--roles', 'api'], { encoding: 'utf8', timeout: 10_000, env: { PATH: '/usr/bin:/bin', CREDENTIALS_DIRECTORY: credentials } });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, `key=${'ab'.repeat(32)} url=postgres://metal:pw@db/metal args=serve --roles api\n`);
  });
});
