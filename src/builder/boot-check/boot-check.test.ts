import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLabHost } from '../../registration/lab/lab-host.ts';
import { assembleLabInitrd } from '../../registration/lab/initrd.ts';
import { labSkipReason } from '../../registration/lab/lab-requirements.ts';
import { runBootCheck, type BootCheckOptions } from './boot-check.ts';

// Real QEMU (TCG) boots of tiny images made of this host's cloud kernel and busybox: each /init
// does one thing a real image might (report, power off, panic, hang, lie about its build).
const skip = labSkipReason();
const TAG = 'CHECK01';
const BUILD = 12;

/** /init: brings up the network (the lab's bring-up), then `behaviour` with the metal.* values in $url $tag $build $token. */
function initScript(behaviour: string): string {
  return `#!/bin/sh
. /etc/metal/bring-up.sh
param() { tr ' ' '\\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
url=$(param metal.boot_url); tag=$(param metal.service_tag); build=$(param metal.build_id); token=$(param metal.boot_token)
echo "test-image: up, build $build of $tag"
report() { wget -q -O - --header 'Content-Type: application/json' --post-data "$1" "$url/api/v1/machines/$2/booted"; echo; }
${behaviour}
poweroff -f
`;
}

const BEHAVIOURS = {
  reports: 'report "{\\"build_id\\": $build, \\"token\\": \\"$token\\"}" "$tag"; sleep 600',
  unhealthy: 'report "{\\"build_id\\": $build, \\"token\\": \\"$token\\", \\"health\\": {\\"ok\\": false, \\"exit_code\\": 3, \\"output\\": \\"nginx: inactive\\"}}" "$tag"; sleep 600',
  powersOff: 'echo "test-image: nothing to report"',
  panics: 'echo "test-image: exiting init"; exit 1',
  hangs: 'sleep 600',
  wrongToken: 'report "{\\"build_id\\": $build, \\"token\\": \\"not-$token\\"}" "$tag"; sleep 600',
  wrongBuild: 'report "{\\"build_id\\": 99, \\"token\\": \\"$token\\"}" "$tag"; sleep 600',
} as const;

describe('boot check (real QEMU)', { skip, timeout: 300_000 }, () => {
  let root: string;
  const images = new Map<keyof typeof BEHAVIOURS, string>();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'metal-boot-check-test-'));
    const host = findLabHost();
    for (const [name, behaviour] of Object.entries(BEHAVIOURS) as [keyof typeof BEHAVIOURS, string][]) {
      const dir = join(root, name);
      await mkdir(dir);
      await copyFile(host.kernel, join(dir, 'bzImage'));
      await writeFile(join(dir, 'initrd'), await assembleLabInitrd(host, initScript(behaviour)));
      await writeFile(join(dir, 'boot.json'), JSON.stringify({ init: '/init', kernel_params: ['console=ttyS1,115200', 'quiet'] }));
      images.set(name, dir);
    }
  });
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const check = async (name: keyof typeof BEHAVIOURS, extra: Partial<BootCheckOptions> = {}) => {
    let log = '';
    const result = await runBootCheck({
      mode: 'booted',
      imageDir: images.get(name)!,
      serviceTag: TAG,
      buildId: BUILD,
      timeoutMs: 120_000,
      kvm: false,
      onOutput: (text) => (log += text),
      ...extra,
    });
    return { result, log };
  };

  it('passes an image that reports booted with the build and token on its kernel line, and logs its console', async () => {
    const { result, log } = await check('reports');
    assert.equal(result.outcome, 'passed', log);
    assert.equal(result.outcome === 'passed' && result.health, null);
    assert.match(log, /boot check: booting the image in a VM \(TCG/);
    // The console reaches the log even though the image's own console= named another port.
    assert.match(log, /^vm\| test-image: up, build 12 of CHECK01$/m);
    assert.match(log, /boot check: the image asked POST \/api\/v1\/machines\/CHECK01\/booted/);
  });

  it('fails an image that powers off without reporting, at once rather than at the time limit', async () => {
    const started = Date.now();
    const { result, log } = await check('powersOff');
    assert.equal(result.outcome, 'failed', log);
    assert.match(result.outcome === 'failed' ? result.reason : '', /^boot check: the image powered off after \d+ s without reporting booted; the console's last words: test-image: nothing to report$/);
    assert.ok(Date.now() - started < 100_000, 'ended with the VM, not at the time limit');
  });

  it('fails an image whose init dies, naming the kernel panic', async () => {
    const { result, log } = await check('panics');
    assert.equal(result.outcome, 'failed', log);
    assert.match(result.outcome === 'failed' ? result.reason : '', /^boot check: the image panicked after \d+ s without reporting booted; the console's last words: Kernel panic - not syncing: Attempted to kill init/);
  });

  it('fails an image that never reports, at the time limit', async () => {
    const { result, log } = await check('hangs', { timeoutMs: 15_000 });
    assert.equal(result.outcome, 'failed', log);
    assert.match(result.outcome === 'failed' ? result.reason : '', /^boot check: the image did not report booted within 15 s \(METAL_BUILD_BOOT_CHECK_TIMEOUT\)/);
  });

  it('fails an image that sends another token or another build than its kernel line gave it', async () => {
    const token = await check('wrongToken');
    assert.equal(token.result.outcome === 'failed' && token.result.reason, 'boot check: the image sent another token than the one on its kernel line', token.log);
    const build = await check('wrongBuild');
    assert.equal(build.result.outcome === 'failed' && build.result.reason, 'boot check: the image reported build 99, not 12', build.log);
  });

  it('judges a failed health check only in healthy mode', async () => {
    const booted = await check('unhealthy');
    assert.equal(booted.result.outcome, 'passed', booted.log);
    assert.deepEqual(booted.result.outcome === 'passed' && booted.result.health, { ok: false, exit_code: 3, output: 'nginx: inactive' });
    const healthy = await check('unhealthy', { mode: 'healthy' });
    assert.equal(
      healthy.result.outcome === 'failed' && healthy.result.reason,
      'boot check: the image booted in the VM, but its health check exited 3 (METAL_BUILD_BOOT_CHECK=healthy): nginx: inactive',
      healthy.log,
    );
  });

  it('stops the VM when the build is stopped', async () => {
    const abort = new AbortController();
    const pending = check('hangs', { signal: abort.signal });
    setTimeout(() => abort.abort(), 3000);
    const { result } = await pending;
    assert.deepEqual(result, { outcome: 'aborted' });
  });
});
