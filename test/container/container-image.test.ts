import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { findExecutable } from '../../src/builder/nix-build.ts';
import { freshPostgres, isPostgresAvailable } from '../support/databases.ts';
import { freePort } from '../cluster/support/nginx.ts';
import { pollUntil } from '../support/poll.ts';

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
      // Until every role of the process is up, /readyz answers 503 "starting: …" (http/readiness.ts):
      // asked again until it answers 200, or the deadline.
      let ready: { status: number; body: string } | undefined;
      while (ready?.status !== 200 && Date.now() < deadline && child.exitCode === null) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
          ready = { status: res.status, body: await res.text() };
          if (res.status === 503 && ready.body.includes('starting')) await new Promise((resolve) => setTimeout(resolve, 250));
          else if (res.status !== 200) break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      assert.ok(ready, `no answer on /readyz: ${output.slice(-2000)}`);
      assert.equal(ready.status, 200, `${ready.body}\n${output.slice(-2000)}`);
      assert.equal(ready.body, '{"status":"ready"}');
      // Ready means every listener of the process is bound: the boot listener answers at once.
      const boot = await pollUntil(
        'the boot listener answers /healthz',
        () => fetch(`http://127.0.0.1:${bootPort}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined),
        { timeoutMs: Math.max(5000, deadline - Date.now()), intervalMs: 250 },
      );
      assert.equal(boot.status, 200);
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
});
