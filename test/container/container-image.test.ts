import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { findExecutable } from '../../src/builder/nix-build.ts';
import { freshPostgres, isPostgresAvailable } from '../support/databases.ts';
import { freePort } from '../cluster/support/nginx.ts';

/**
 * Builds the Containerfile with Debian's buildah/podman on a machine without an image registry: the
 * base image is a debootstrap root file system with this Node 20, then both targets are built, and the
 * runtime image runs `metal serve` against the local PostgreSQL until `/readyz` answers. `podman run`
 * cannot start containers on the project's machines (crun may not set resource limits there), so the
 * image runs under `buildah run --isolation chroot` (docs/deploy.md).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MIRROR = process.env.METAL_TEST_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
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
  const storage = ['--storage-driver', 'vfs', '--root', join(work, 'storage'), '--runroot', join(work, 'run')];
  const database = freshPostgres();
  after(async () => {
    await database.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs a tool to completion with a time limit; fails the test with its output otherwise. */
  function run(command: string, args: string[], timeoutMs: number): string {
    const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
    assert.equal(result.status, 0, `${command} ${args.slice(0, 4).join(' ')} failed (${result.error?.message ?? result.status}): ${output.slice(-3000)}`);
    return result.stdout;
  }

  const buildArgs = (target: string, tag: string) => [
    ...storage, 'build', '--isolation', 'chroot', '--network', 'host',
    '--build-arg', 'NODE_IMAGE=localhost/node:20-bookworm-slim',
    ...(existsSync(CA_BUNDLE) ? ['-v', `${CA_BUNDLE}:/run/site-ca.crt:ro`, '--build-arg', 'NPM_CONFIG_CAFILE=/run/site-ca.crt'] : []),
    '--target', target, '-t', tag, '.',
  ];

  test('a Node 20 base from debootstrap', { timeout: 1_200_000 }, () => {
    const rootfs = join(work, 'rootfs');
    run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, MIRROR], 1_100_000);
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
    run('tar', ['-C', rootfs, '-cf', join(work, 'rootfs.tar'), '.'], 300_000);
    rmSync(rootfs, { recursive: true, force: true });
    run('podman', [...storage, 'import', join(work, 'rootfs.tar'), 'localhost/node:20-bookworm-slim'], 300_000);
    rmSync(join(work, 'rootfs.tar'));
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
    const container = run('buildah', [...storage, 'from', 'localhost/metal-enrollment:test'], 300_000).trim();
    const modules = run('buildah', [...storage, 'run', '--isolation', 'chroot', container, '--', 'ls', '/opt/metal/node_modules'], 120_000);
    for (const devOnly of ['typescript', 'eslint', 'kubernetes-models', 'playwright-core']) assert.doesNotMatch(modules, new RegExp(`^${devOnly}$`, 'm'), devOnly);
    assert.match(modules, /^fastify$/m);
    const tests = run('buildah', [...storage, 'run', '--isolation', 'chroot', container, '--', 'find', '/opt/metal/src', '-name', '*.test.ts'], 120_000);
    assert.equal(tests, '', 'no test files in the image');
    const nix = spawnSync('buildah', [...storage, 'run', '--isolation', 'chroot', container, '--', 'which', 'nix-build'], { encoding: 'utf8', timeout: 120_000 });
    assert.notEqual(nix.status, 0, 'Nix only in the builder image');
  });

  test('metal serve in the image answers /readyz against the local PostgreSQL', { timeout: 300_000 }, async () => {
    const container = run('buildah', [...storage, 'from', 'localhost/metal-enrollment:test'], 300_000).trim();
    const port = await freePort();
    const bootPort = await freePort();
    const env = {
      METAL_DATABASE_URL: database.url,
      METAL_SECRET_KEY: 'cd'.repeat(32),
      METAL_ADMIN_PASSWORD: 'container-admin-password',
      METAL_LISTEN: `127.0.0.1:${port}`,
      METAL_BOOT_LISTEN: `127.0.0.1:${bootPort}`,
    };
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const child = spawn('buildah', [...storage, 'run', '--isolation', 'chroot', '--network', 'host', '--user', '10001:10001', ...envArgs, container, '--', 'metal', 'serve', '--roles', 'api,boot'], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const deadline = Date.now() + 120_000;
      let ready: { status: number; body: string } | undefined;
      while (!ready && Date.now() < deadline && child.exitCode === null) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
          ready = { status: res.status, body: await res.text() };
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      assert.ok(ready, `no answer on /readyz: ${output.slice(-2000)}`);
      assert.equal(ready.status, 200);
      assert.equal(ready.body, '{"status":"ready"}');
      const boot = await fetch(`http://127.0.0.1:${bootPort}/healthz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(boot.status, 200);
      assert.match(output, /"msg":"metal: ready"/);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid!, 'SIGKILL'), 35_000);
      await exited;
      clearTimeout(timer);
    }
  });

  test('the builder image: Nix builds as its own user', { timeout: 900_000 }, () => {
    run('podman', buildArgs('builder', 'localhost/metal-enrollment-builder:test'), 850_000);
    const container = run('buildah', [...storage, 'from', 'localhost/metal-enrollment-builder:test'], 300_000).trim();
    const probe = join(work, 'probe.nix');
    writeFileSync(probe, 'builtins.derivation { name = "probe"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" "echo built-as-$(id -u) > $out" ]; }\n');
    run('buildah', [...storage, 'copy', '--chmod', '0644', container, probe, '/tmp/probe.nix'], 60_000);
    const inBuilder = (args: string[]) =>
      run('buildah', [...storage, 'run', '--isolation', 'chroot', '--user', '10002:10002', '-e', 'NIX_CONFIG=build-users-group =\nsandbox = false\nsubstituters =', container, '--', ...args], 300_000);
    inBuilder(['nix-build', '/tmp/probe.nix', '-o', '/tmp/result']);
    const out = inBuilder(['cat', '/tmp/result']) + inBuilder(['metal', '--version']);
    assert.equal(out, 'built-as-10002\n0.1.0\n');
  });
});
