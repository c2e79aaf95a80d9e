import { randomBytes } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { readBootManifest } from '../../images/boot-manifest.ts';
import type { BootHealth } from '../../core/types.ts';
import { findQemu, kvmUsable, runQemu, type QemuRunResult } from '../../vm/qemu-process.ts';
import { checkMemoryMb, checkVmArguments, serialPorts } from './check-vm.ts';
import { followConsole } from './console-follower.ts';
import { BuilderCannotStart } from '../builder-cannot-start.ts';
import { listenForReport, type HeardReport } from './report-listener.ts';

/**
 * METAL_BUILD_BOOT_CHECK: `off`; `booted`, a build is published only after its image, booted in a
 * VM, reports that it came up; `healthy`, and when the machine's profile has a health check, that
 * check passed in the VM too.
 */
export type BootCheckMode = 'off' | 'booted' | 'healthy';
export const BOOT_CHECK_MODES = ['off', 'booted', 'healthy'] as const;
/** METAL_BUILD_BOOT_CHECK_TIMEOUT's default. */
export const DEFAULT_BOOT_CHECK_TIMEOUT_MS = 600_000;

/** One boot check of a published build. */
export interface BootCheckOptions {
  mode: Exclude<BootCheckMode, 'off'>;
  /** The build's published directory (bzImage, initrd, boot.json): the bytes machines will get. */
  imageDir: string;
  serviceTag: string;
  buildId: number;
  timeoutMs: number;
  /** Stops the check (the build was cancelled, lost or the builder stops). */
  signal?: AbortSignal | undefined;
  /** Lines for the build log, each ending in a newline. */
  onOutput: (text: string) => void;
  /** Defaults to kvmUsable(). */
  kvm?: boolean;
}

/** How a boot check ended. */
export type BootCheckResult =
  | { outcome: 'passed'; seconds: number; health: BootHealth | null }
  | { outcome: 'failed'; reason: string }
  | { outcome: 'aborted' };

/** The boot check cannot run on this host; the message names the setting and the package. */
export class BootCheckUnavailable extends BuilderCannotStart {
  constructor(mode: BootCheckMode) {
    super(`builder: METAL_BUILD_BOOT_CHECK=${mode} boots each image in a VM, and this host has no qemu-system-x86_64; install QEMU (Debian: qemu-system-x86, NixOS: pkgs.qemu) or set METAL_BUILD_BOOT_CHECK=off`);
    this.name = 'BootCheckUnavailable';
  }
}

const FORWARDER = new URL('./guest-forward.mjs', import.meta.url).pathname;
/** Unix socket paths are limited to 107 bytes; the check's lives in a short temporary directory. */
const MAX_SOCKET_PATH = 100;

/**
 * Boots a published image in QEMU and waits for its booted report (sent by the image's own
 * `metal-booted` service to the check's listener), the VM's end, the time limit or an abort,
 * whichever comes first. The console goes to the build log as it comes (`vm| ` lines).
 */
export async function runBootCheck(o: BootCheckOptions): Promise<BootCheckResult> {
  const qemu = findQemu();
  if (!qemu) return { outcome: 'failed', reason: new BootCheckUnavailable(o.mode).message };
  const manifest = await readBootManifest(join(o.imageDir, 'boot.json'), true);
  if (!manifest.ok) return { outcome: 'failed', reason: `boot check: ${manifest.reason}` };
  const initrd = join(o.imageDir, 'initrd');
  const kernel = join(o.imageDir, 'bzImage');
  const initrdBytes = (await stat(initrd)).size;
  const kvm = o.kvm ?? kvmUsable();
  const memoryMb = checkMemoryMb(initrdBytes);
  const cpus = Math.min(2, availableParallelism());
  const token = randomBytes(24).toString('base64url');

  const dir = await mkdtemp(join(tmpdir(), 'metal-check-'));
  const started = Date.now();
  try {
    const socketPath = join(dir, 'report.sock');
    if (socketPath.length > MAX_SOCKET_PATH) {
      return { outcome: 'failed', reason: `boot check: the temporary directory ${dir} is too long for a Unix socket; set TMPDIR to a shorter one` };
    }
    const listener = await listenForReport(socketPath, { serviceTag: o.serviceTag, buildId: o.buildId, token }, (line) => o.onOutput(`boot check: the image asked ${line}\n`));
    const consoleLogs = Array.from({ length: serialPorts(manifest.manifest) }, (_, n) => join(dir, `ttyS${n}.log`));
    const consoleFollower = followConsole(consoleLogs, (line) => o.onOutput(`vm| ${line}\n`), { keep: 80 });
    // Ends the VM: the report came, or the build was stopped.
    const stopVm = new AbortController();
    const vmSignal = o.signal ? AbortSignal.any([o.signal, stopVm.signal]) : stopVm.signal;
    try {
      const args = checkVmArguments({
        kernel,
        initrd,
        manifest: manifest.manifest,
        serviceTag: o.serviceTag,
        buildId: o.buildId,
        token,
        consoleLogs,
        forward: [process.execPath, '--no-warnings', FORWARDER, socketPath],
        kvm,
        memoryMb,
        cpus,
      });
      o.onOutput(`boot check: booting the image in a VM (${kvm ? 'KVM' : 'TCG, no KVM on this host: emulated, slower'}, ${memoryMb} MiB, ${cpus} CPU${cpus === 1 ? '' : 's'}) until it reports booted, at most ${Math.round(o.timeoutMs / 1000)} s (METAL_BUILD_BOOT_CHECK_TIMEOUT)\n`);
      const vm = runQemu(qemu, args, { stdio: 'ignore', timeoutMs: o.timeoutMs, signal: vmSignal });
      const first = await Promise.race([
        listener.heard.then((report) => ({ kind: 'report' as const, report })),
        vm.then((result) => ({ kind: 'exit' as const, result })),
      ]);
      stopVm.abort();
      const exit = first.kind === 'exit' ? first.result : await vm;
      await consoleFollower.stop();
      const seconds = Math.round((Date.now() - started) / 1000);
      if (o.signal?.aborted) return { outcome: 'aborted' };
      if (first.kind === 'report') return judgeReport(first.report, o, seconds);
      return { outcome: 'failed', reason: describeEnd(exit, seconds, o.timeoutMs, consoleFollower.lastLines()) };
    } finally {
      stopVm.abort();
      await consoleFollower.stop();
      await listener.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function judgeReport(report: HeardReport, o: BootCheckOptions, seconds: number): BootCheckResult {
  if (report.kind === 'wrong') return { outcome: 'failed', reason: `boot check: ${report.reason}` };
  const health = report.health;
  if (o.mode === 'healthy' && health !== null && !health.ok) {
    const why = health.exit_code === null ? 'did not pass within its time' : `exited ${health.exit_code}`;
    const said = health.output.trim().split('\n').at(-1)?.slice(0, 200);
    return { outcome: 'failed', reason: `boot check: the image booted in the VM, but its health check ${why} (METAL_BUILD_BOOT_CHECK=healthy)${said ? `: ${said}` : ''}` };
  }
  return { outcome: 'passed', seconds, health };
}

/** Why the VM ended without a report, with the console's last words. */
function describeEnd(exit: QemuRunResult, seconds: number, timeoutMs: number, lastLines: string[]): string {
  // The kernel's lines carry a time stamp; the image's own (its init, systemd) do not. The last
  // words are a panic's own line (not the stack trace after it), else the image's last line: the
  // kernel's last lines of a power-off ("reboot: Power down") say how it ended, not why.
  const KERNEL_LINE = /^\[\s*\d+\.\d+\]\s*/;
  const panic = lastLines.find((l) => /Kernel panic/.test(l))?.replace(KERNEL_LINE, '');
  const ending = lastLines.slice(-5).map((l) => /reboot: (Power down|Restarting system)/.exec(l)?.[1]).find((e) => e !== undefined);
  const words = panic ?? lastLines.findLast((l) => !KERNEL_LINE.test(l)) ?? lastLines.at(-1)?.replace(KERNEL_LINE, '');
  const said = words ? `; the console's last words: ${words.slice(0, 240)}` : '; the console stayed empty';
  if (exit.timedOut) return `boot check: the image did not report booted within ${Math.round(timeoutMs / 1000)} s (METAL_BUILD_BOOT_CHECK_TIMEOUT)${said}`;
  if (exit.exitCode !== 0) {
    const qemuSaid = exit.stderr.trim().split('\n').at(-1);
    return `boot check: the VM could not run (QEMU exited with ${exit.exitCode ?? exit.signal})${qemuSaid ? `: ${qemuSaid.slice(0, 240)}` : ''}`;
  }
  const how = panic ? 'panicked' : ending === 'Power down' ? 'powered off' : ending ? 'rebooted' : 'stopped';
  return `boot check: the image ${how} after ${seconds} s without reporting booted${said}`;
}
