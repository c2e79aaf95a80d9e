import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { findExecutable } from '../../src/builder/nix-build.ts';
import { freshPostgres, isPostgresAvailable } from '../support/databases.ts';
import { freeTcpPort as freePort, freeUdpPort } from '../support/power/free-port.ts';
import { pollUntil } from '../support/poll.ts';
import { makeSigningKeys } from '../support/secure-boot.ts';
import { verifiedBy } from '../../src/images/secure-boot.ts';

/**
 * Builds the Containerfile with Debian's buildah/podman on a machine without an image registry: the
 * base image is a debootstrap root file system with this Node 20, then both targets are built, and the
 * runtime image runs `metal serve` against the local PostgreSQL until `/readyz` answers. `podman run`
 * cannot start containers on the project's machines (crun may not set resource limits there), so the
 * image runs under `buildah run --isolation chroot` (docs/deploy.md).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MIRROR = process.env.METAL_TEST_DEBIAN_MIRROR ?? aptMirror() ?? 'http://deb.debian.org/debian';
// overlay (native, as root) shares each layer's files; vfs copies the whole root file system for every
// layer and every working container (18 GB, and 27 minutes instead of 5 on two cores).
const STORAGE_DRIVER = process.env.METAL_TEST_STORAGE_DRIVER ?? 'overlay';

/** The machine's own Debian mirror: the first `URIs:` of the deb822 stanza that serves bookworm. */
function aptMirror(sources = '/etc/apt/sources.list.d/debian.sources'): string | undefined {
  if (!existsSync(sources)) return undefined;
  for (const stanza of readFileSync(sources, 'utf8').split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/);
    if (field('Types')?.includes('deb') && field('Suites')?.includes('bookworm')) return field('URIs')?.[0];
  }
  return undefined;
}
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

async function skipReason(): Promise<string | undefined> {
  const missing = ['buildah', 'podman', 'debootstrap'].filter((tool) => !findExecutable(tool, `${process.env.PATH ?? ''}:/usr/sbin:/sbin`));
  const reasons = missing.map((tool) => `no ${tool} (apt-get install ${tool})`);
  if (!(await isPostgresAvailable())) reasons.push('PostgreSQL unreachable');
  if (reasons.length === 0) return undefined;
  const reason = reasons.join('; ');
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING the container image test: ${reason} ***\n`);
  return reason;
}
const skip = await skipReason();

describe('the container image (Containerfile)', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'metal-image-'));
  const storage = ['--storage-driver', STORAGE_DRIVER, '--root', join(work, 'storage'), '--runroot', join(work, 'run')];
  const database = freshPostgres();
  after(async () => {
    await database.cleanup();
    // Unmounts and removes the working containers before their files go.
    spawnSync('buildah', [...storage, 'rm', '--all'], { timeout: 120_000 });
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs a tool to completion with a time limit; fails the test with its output otherwise. */
  function run(command: string, args: string[], timeoutMs: number): string {
    const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
    assert.equal(result.status, 0, `${command} ${args.slice(0, 4).join(' ')} failed (${result.error?.message ?? result.status}): ${output.slice(-3000)}`);
    return result.stdout;
  }

  /** A new working container of the image, mounted: the path of its root file system. */
  function mountImage(image: string): string {
    const container = run('buildah', [...storage, 'from', image], 300_000).trim();
    return run('buildah', [...storage, 'mount', container], 60_000).trim();
  }

  const buildArgs = (target: string, tag: string) => [
    // --layers: the builder target reuses the dependencies and runtime stages' cached layers.
    ...storage, 'build', '--layers', '--isolation', 'chroot', '--network', 'host',
    '--build-arg', 'NODE_IMAGE=localhost/node:20-bookworm-slim',
    ...(existsSync(CA_BUNDLE) ? ['-v', `${CA_BUNDLE}:/run/site-ca.crt:ro`, '--build-arg', 'NPM_CONFIG_CAFILE=/run/site-ca.crt'] : []),
    '--target', target, '-t', tag, '.',
  ];

  test('a Node 20 base from debootstrap', { timeout: 900_000 }, () => {
    // debootstrap writes straight into a scratch container's mount, which is committed as the base: no
    // tar file, no import copy.
    const container = run('buildah', [...storage, 'from', 'scratch'], 60_000).trim();
    const rootfs = run('buildah', [...storage, 'mount', container], 60_000).trim();
    run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, MIRROR], 800_000);
    // Node 20 as the official node image lays it out: /usr/local/bin/node, npm, headers.
    const prefix = dirname(dirname(process.execPath));
    cpSync(process.execPath, join(rootfs, 'usr/local/bin/node'));
    const npmDir = [join(prefix, 'lib/node_modules/npm'), '/usr/lib/node_modules/npm'].find((d) => existsSync(d));
    assert.ok(npmDir, 'npm beside node');
    mkdirSync(join(rootfs, 'usr/local/lib/node_modules'), { recursive: true });
    cpSync(npmDir, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    const headers = [join(prefix, 'include/node'), '/usr/include/node'].find((d) => existsSync(join(d, 'node.h')));
    assert.ok(headers, 'Node headers (for better-sqlite3)');
    cpSync(headers, join(rootfs, 'usr/local/include/node'), { recursive: true });
    writeFileSync(join(rootfs, 'usr/local/etc/npmrc'), 'nodedir=/usr/local\nfund=false\naudit=false\nupdate-notifier=false\n');
    // debootstrap leaves its downloaded packages in the tree; the node image has none.
    rmSync(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
    mkdirSync(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
    run('buildah', [...storage, 'umount', container], 60_000);
    run('buildah', [...storage, 'commit', '--rm', container, 'localhost/node:20-bookworm-slim'], 300_000);
  });

  test('the runtime image: non-root, metal as entrypoint, no development dependencies', { timeout: 1_500_000 }, () => {
    run('podman', buildArgs('runtime', 'localhost/metal-enrollment:test'), 1_400_000);
    const config = JSON.parse(run('podman', [...storage, 'image', 'inspect', '--format', '{{json .Config}}', 'localhost/metal-enrollment:test'], 60_000)) as {
      User: string;
      Entrypoint: string[];
      Cmd: string[];
    };
    assert.equal(config.User, '10001:10001');
    assert.deepEqual(config.Entrypoint, ['metal']);
    assert.deepEqual(config.Cmd, ['serve']);
    // The image's files are read through a mount: `buildah run --isolation chroot` here sometimes drops a
    // command's output (exit status 0, empty stdout), so no check depends on what a command prints.
    const image = mountImage('localhost/metal-enrollment:test');
    const modules = readdirSync(join(image, 'opt/metal/node_modules'));
    for (const devOnly of ['typescript', 'eslint', 'kubernetes-models', 'playwright-core']) assert.ok(!modules.includes(devOnly), devOnly);
    assert.ok(modules.includes('fastify'), `fastify in node_modules: ${modules.join(' ')}`);
    const tests = readdirSync(join(image, 'opt/metal/src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.test.ts'));
    assert.deepEqual(tests, [], 'no test files in the image');
    const nix = ['usr/local/bin', 'usr/bin', 'bin'].filter((dir) => existsSync(join(image, dir, 'nix-build')));
    assert.deepEqual(nix, [], 'Nix only in the builder image');
  });

  /**
   * Runs `metal <args>` in a new working container of `image` (after `setUp` copied files into it) as
   * `user` with `env`, on the host's network, until `ready(output)` holds (or it exits, or 120 s pass);
   * then `check` runs while it is still up. The process is stopped afterwards, whatever happened.
   */
  async function whileRunning(
    image: string,
    how: { user: string; env: Record<string, string>; args: string[]; setUp: (container: string) => void },
    ready: (output: string) => boolean,
    check: (container: string) => Promise<void>,
  ): Promise<void> {
    const { user, env, args } = how;
    const container = run('buildah', [...storage, 'from', image], 300_000).trim();
    how.setUp(container);
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const child = spawn('buildah', [...storage, 'run', '--isolation', 'chroot', '--network', 'host', '--user', user, ...envArgs, container, '--', 'metal', ...args], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const readyOrExited = () => ready(output) || child.exitCode !== null;
      await pollUntil(`metal ${args.join(' ')} in ${image} is ready`, readyOrExited, { timeoutMs: 120_000, intervalMs: 250 }).catch((err: Error) => assert.fail(`${err.message}\n${output.slice(-3000)}`));
      assert.ok(ready(output), `metal ${args.join(' ')} exited (${child.exitCode}) before it was ready:\n${output.slice(-3000)}`);
      await check(container);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid!, 'SIGKILL'), 35_000);
      await exited;
      clearTimeout(timer);
    }
  }
  /** A Secure Boot key and certificate, copied into a container for `user` (the key readable by it alone). */
  const keys = makeSigningKeys(work, 'Metal container test db');
  const copyKeys = (container: string, user: string) => {
    run('buildah', [...storage, 'copy', '--chown', user, '--chmod', '0600', container, keys.key, '/tmp/db.key'], 60_000);
    run('buildah', [...storage, 'copy', '--chown', user, '--chmod', '0644', container, keys.cert, '/tmp/db.pem'], 60_000);
  };

  test('metal serve in the image: /readyz against the local PostgreSQL, iPXE signed at /ipxe/, and the pxe role\'s TFTP', { timeout: 300_000 }, async () => {
    const image = 'localhost/metal-enrollment:test';
    const [port, bootPort, tftpPort] = [await freePort(), await freePort(), await freeUdpPort()];
    const env = {
      METAL_DATABASE_URL: database.url,
      METAL_SECRET_KEY: 'cd'.repeat(32),
      METAL_ADMIN_PASSWORD: 'container-admin-password',
      METAL_LISTEN: `127.0.0.1:${port}`,
      METAL_BOOT_LISTEN: `127.0.0.1:${bootPort}`,
      METAL_TFTP_LISTEN: `127.0.0.1:${tftpPort}`,
      METAL_SECURE_BOOT_KEY: '/tmp/db.key',
      METAL_SECURE_BOOT_CERT: '/tmp/db.pem',
    };
    // The process logs `metal: ready` once every role is up; /readyz then also asks the database.
    const user = '10001:10001';
    await whileRunning(image, { user, env, args: ['serve', '--roles', 'api,boot,pxe'], setUp: (c) => copyKeys(c, user) }, (out) => out.includes('"metal: ready"'), async (container) => {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(ready.status, 200);
      assert.equal(await ready.text(), '{"status":"ready"}');
      const health = await fetch(`http://127.0.0.1:${bootPort}/healthz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200);
      const rootfs = run('buildah', [...storage, 'mount', container], 60_000).trim();
      // The boot role serves Debian's iPXE for UEFI signed with the site's key (sbsign in the image).
      const efi = await fetch(`http://127.0.0.1:${bootPort}/ipxe/snponly.efi`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(efi.status, 200);
      const signed = join(work, 'snponly.efi');
      writeFileSync(signed, Buffer.from(await efi.arrayBuffer()));
      assert.ok(await verifiedBy(signed, keys.cert), 'the served snponly.efi is signed by the site certificate');
      assert.ok(!readFileSync(join(rootfs, 'usr/lib/ipxe/snponly.efi')).equals(readFileSync(signed)), 'the image\'s own file is left unsigned');
      // The pxe role hands out the image's iPXE for BIOS over TFTP, as it is.
      const tftp = spawnSync('curl', ['-sS', '--max-time', '20', `tftp://127.0.0.1:${tftpPort}/undionly.kpxe`], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
      assert.equal(tftp.status, 0, `curl tftp: ${tftp.stderr?.toString()}`);
      assert.ok(tftp.stdout.equals(readFileSync(join(rootfs, 'usr/lib/ipxe/undionly.kpxe'))), 'undionly.kpxe over TFTP is the image\'s file');
    });
  });

  test('the builder image: Nix builds as its own user', { timeout: 900_000 }, () => {
    run('podman', buildArgs('builder', 'localhost/metal-enrollment-builder:test'), 850_000);
    const container = run('buildah', [...storage, 'from', 'localhost/metal-enrollment-builder:test'], 300_000).trim();
    const probe = join(work, 'probe.nix');
    writeFileSync(probe, 'builtins.derivation { name = "probe"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" "echo built-as-$(id -u) > $out" ]; }\n');
    run('buildah', [...storage, 'copy', '--chmod', '0644', container, probe, '/tmp/probe.nix'], 60_000);
    const inBuilder = (script: string) =>
      run('buildah', [...storage, 'run', '--isolation', 'chroot', '--user', '10002:10002', '-e', 'NIX_CONFIG=build-users-group =\nsandbox = false\nsubstituters =', container, '--', 'sh', '-c', script], 300_000);
    // Outputs go to files read through the container's mount (see the runtime image's test).
    inBuilder('nix-build /tmp/probe.nix -o /tmp/result && metal --version > /tmp/version');
    const rootfs = run('buildah', [...storage, 'mount', container], 60_000).trim();
    const result = readlinkSync(join(rootfs, 'tmp/result'));
    assert.match(result, /^\/nix\/store\/[a-z0-9]{32}-probe$/);
    assert.equal(readFileSync(join(rootfs, result), 'utf8'), 'built-as-10002\n');
    assert.equal(statSync(join(rootfs, result)).uid, 10002, 'the store path belongs to the builder user');
    assert.equal(readFileSync(join(rootfs, 'tmp/version'), 'utf8'), '0.1.0\n');
  });

  test('the builder image: QEMU for the boot check and sbsign for Secure Boot, so the builder starts with both on', { timeout: 300_000 }, async () => {
    const image = 'localhost/metal-enrollment-builder:test';
    const rootfs = mountImage(image);
    for (const tool of ['usr/bin/qemu-system-x86_64', 'usr/bin/sbsign', 'usr/bin/nix-build']) assert.ok(existsSync(join(rootfs, tool)), `${tool} in the builder image`);
    const env = {
      METAL_DATABASE_URL: database.url,
      METAL_SECRET_KEY: 'cd'.repeat(32),
      METAL_BUILD_BOOT_CHECK: 'booted',
      METAL_SECURE_BOOT_KEY: '/tmp/db.key',
      METAL_SECURE_BOOT_CERT: '/tmp/db.pem',
      NIX_CONFIG: 'build-users-group =\nsandbox = false\nsubstituters =',
      // Its own /nix, no daemon: as deploy/kubernetes/base/builder.yaml runs it.
      METAL_BUILD_UNSANDBOXED: '1',
    };
    // Without QEMU or sbsign the builder refuses to start, naming the setting (serve-process.test.ts);
    // here it says it is ready and what it will do.
    const readyLine = (out: string) => /builder: \S+ ready; each image boots in a VM before publication \(METAL_BUILD_BOOT_CHECK=booted[^)]*\); kernels are signed for Secure Boot by CN ?= ?Metal container test db/.test(out);
    const user = '10002:10002';
    await whileRunning(image, { user, env, args: ['builder'], setUp: (c) => copyKeys(c, user) }, readyLine, async () => {});
  });
});
