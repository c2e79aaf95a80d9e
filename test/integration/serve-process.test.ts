import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { findExecutable, hasNixDaemon } from '../../src/builder/nix-build.ts';
import { runMetal, startServerProcess } from '../support/server-process.ts';
import { makeSigningKeys, signingSkipReason } from '../support/secure-boot.ts';

describe('metal serve as a process', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-serve-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('a bad setting stops start-up with a message naming the key and the value', async () => {
    const r = await runMetal(['serve'], { METAL_DATA_DIR: dataDir, METAL_BUILD_TIMEOUT: 'forever' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_BUILD_TIMEOUT="forever" is invalid/);
  });

  test('a flag names its key too', async () => {
    const r = await runMetal(['serve', '--listen', 'nowhere'], { METAL_DATA_DIR: dataDir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_LISTEN="nowhere" is invalid/);
  });

  test('an unknown role is refused', async () => {
    const r = await runMetal(['serve', '--roles', 'api,dhcp'], { METAL_DATA_DIR: dataDir });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown role "dhcp"/);
  });

  test('a database that cannot be used stops start-up naming METAL_DATABASE_URL, without its password', { timeout: 60_000 }, async () => {
    const refused = await runMetal(['serve'], { METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: 'postgres://metal:hunter2@127.0.0.1:1/metal' }, undefined, 30_000);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^metal: could not start: METAL_DATABASE_URL: cannot reach postgres:\/\/metal:\*\*\*@127\.0\.0\.1:1\/metal \(connect ECONNREFUSED 127\.0\.0\.1:1\); check the URL/m);
    assert.doesNotMatch(refused.stderr + refused.stdout, /hunter2/);
    const migrate = await runMetal(['migrate'], { METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: 'postgres://metal@127.0.0.1:1/metal' }, undefined, 30_000);
    assert.notEqual(migrate.code, 0);
    assert.match(migrate.stderr, /METAL_DATABASE_URL: cannot reach postgres:\/\/metal@127\.0\.0\.1:1\/metal/);
    // A data directory that is a file: SQLite's directory cannot be made.
    const file = join(dataDir, 'not-a-directory');
    writeFileSync(file, '');
    const sqlite = await runMetal(['serve'], { METAL_DATA_DIR: file }, undefined, 30_000);
    assert.equal(sqlite.code, 1);
    assert.match(sqlite.stderr, /^metal: could not start: METAL_DATABASE_URL: cannot open sqlite:.*not-a-directory\/metal\.db .*metal\.db in METAL_DATA_DIR\)$/m);
  });

  test('metal migrate brings the schema up to date, then says so', async () => {
    const env = { METAL_DATA_DIR: dataDir };
    const first = await runMetal(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied: 0001-initial/);
    const second = await runMetal(['migrate'], env);
    assert.match(second.stdout, /the schema is up to date/);
  });

  test('all roles start, answer, and stop gracefully on SIGTERM', async () => {
    const server = await startServerProcess(['serve'], { METAL_DATA_DIR: dataDir });
    assert.ok(server.addresses.api && server.addresses.boot);
    const health = await fetch(`${server.addresses.api}/readyz`);
    assert.equal(health.status, 200);
    const viaBoot = await fetch(`${server.addresses.boot}/healthz`);
    assert.equal(viaBoot.status, 200);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
  });
});

// On a host with nix-build but no Nix daemon (CI's), building would run a configuration's derivations
// as this user; without METAL_BUILD_UNSANDBOXED=1 the builder refuses, the rest of `metal serve` runs.
const buildsUnsandboxed = findExecutable('nix-build') !== undefined && !hasNixDaemon();
if (!buildsUnsandboxed) {
  if (process.env.CI === 'true') throw new Error('required in CI: nix-build without a Nix daemon (Debian nix-bin)');
  console.warn('\n*** SKIPPING the builder sandbox refusal tests: they need nix-build without a Nix daemon ***\n');
}

describe('the builder without a sandbox', { skip: !buildsUnsandboxed }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-sandbox-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('metal builder alone refuses to start, naming METAL_BUILD_UNSANDBOXED', { timeout: 60_000 }, async () => {
    const r = await runMetal(['builder'], { METAL_DATA_DIR: dataDir, METAL_BUILD_UNSANDBOXED: '0' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no Nix daemon on this host .* METAL_BUILD_UNSANDBOXED=1/);
  });

  test('metal serve comes up without its builder and says why', { timeout: 60_000 }, () => servesWithoutBuilder({ METAL_DATA_DIR: dataDir, METAL_BUILD_UNSANDBOXED: '0' }));
});

// METAL_BUILD_BOOT_CHECK boots each image in QEMU: a builder on a host without it cannot keep that
// promise and says so at start, naming the setting (PATH without qemu-system-x86_64 stands for such a host).
/** `metal serve` whose builder cannot start: the API and the boot server still come up and answer. */
async function servesWithoutBuilder(env: Record<string, string>): Promise<void> {
  const server = await startServerProcess(['serve'], { ...env, METAL_LOG_FORMAT: 'json' });
  try {
    assert.equal((await fetch(`${server.addresses.api}/readyz`)).status, 200);
    assert.equal((await fetch(`${server.addresses.boot}/healthz`)).status, 200);
  } finally {
    server.child.kill('SIGTERM');
    await Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
  }
}

/** A data directory and an empty directory to be the whole PATH (a host without a tool), removed after the suite. */
function hostWithoutTools(prefix: string): { dataDir: string; emptyPath: string } {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const emptyPath = mkdtempSync(join(tmpdir(), 'metal-empty-path-'));
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(emptyPath, { recursive: true, force: true });
  });
  return { dataDir, emptyPath };
}

describe('the boot check without QEMU', () => {
  const { dataDir, emptyPath } = hostWithoutTools('metal-no-qemu-');
  const env = { METAL_DATA_DIR: dataDir, METAL_BUILD_UNSANDBOXED: '1', METAL_BUILD_BOOT_CHECK: 'booted', PATH: emptyPath };

  test('metal builder alone refuses to start, naming METAL_BUILD_BOOT_CHECK and the package', { timeout: 60_000 }, async () => {
    const r = await runMetal(['builder'], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /METAL_BUILD_BOOT_CHECK=booted boots each image in a VM, and this host has no qemu-system-x86_64; install QEMU \(Debian: qemu-system-x86, NixOS: pkgs\.qemu\) or set METAL_BUILD_BOOT_CHECK=off/);
  });

  test('metal serve comes up without its builder and says why', { timeout: 60_000 }, () => servesWithoutBuilder(env));
});

// METAL_SECURE_BOOT_KEY: the boot role signs the iPXE binaries it hands out at start, the builder each
// kernel; without sbsign neither can, and each says so at start, naming the setting.
describe('Secure Boot without sbsign', { skip: signingSkipReason() }, () => {
  const { dataDir, emptyPath } = hostWithoutTools('metal-no-sbsign-');
  const env = () => {
    const keys = makeSigningKeys(dataDir);
    return { METAL_DATA_DIR: dataDir, METAL_BUILD_UNSANDBOXED: '1', METAL_SECURE_BOOT_KEY: keys.key, METAL_SECURE_BOOT_CERT: keys.cert, METAL_IPXE_DIR: '/usr/lib/ipxe', PATH: emptyPath };
  };
  const expected = (role: string) => new RegExp(`METAL_SECURE_BOOT_KEY is set, so ${role} signs with sbsign, and this host has no sbsign on PATH; install sbsigntool`);

  test('metal boot refuses to start', { timeout: 60_000 }, async () => {
    const r = await runMetal(['boot', '--boot-listen', '127.0.0.1:0'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, expected('the boot role \\(the iPXE binaries it hands out\\)'));
  });

  test('metal builder refuses to start', { timeout: 60_000 }, async () => {
    const r = await runMetal(['builder'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, expected('the builder'));
  });
});
