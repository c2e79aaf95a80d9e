import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { findExecutable } from '../core/executables.ts';

/**
 * The one place `qemu-system-x86_64` is run from: the lab's machines (`metal lab`) and the builder's
 * boot check both come here with an argument array and a time limit.
 */

const KILL_GRACE_MS = 5000;
const BACKSTOP_EXTRA_SECONDS = 15;

/** `qemu-system-x86_64` on PATH, or undefined (Debian: qemu-system-x86; NixOS: pkgs.qemu). */
export function findQemu(path = process.env.PATH ?? ''): string | undefined {
  return findExecutable('qemu-system-x86_64', path);
}

/**
 * True when this host can run KVM guests: `/dev/kvm` is readable and writable, and the CPU announces
 * hardware virtualisation (vmx or svm). A `/dev/kvm` without those flags exists on some virtual
 * machines, where KVM guests hang, so the device alone is not enough.
 */
export function kvmUsable(cpuinfo = readCpuinfo()): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/** How to run one QEMU process. */
export interface QemuRunOptions {
  /** `inherit`: the guest's stdio is this terminal (Ctrl-C stops it); `ignore`: QEMU writes its own files. */
  stdio: 'inherit' | 'ignore';
  /** QEMU is stopped (SIGTERM, then SIGKILL) after this long. */
  timeoutMs: number;
  /** Stops QEMU early. */
  signal?: AbortSignal | undefined;
  /** Runs QEMU inside this network namespace (`ip netns exec`, root only). */
  netns?: string | undefined;
}

/** How a QEMU run ended. */
export interface QemuRunResult {
  /** QEMU's exit code (0 when the guest powered off, or rebooted under `-no-reboot`). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** What QEMU itself printed on stderr (not the guest's console). */
  stderr: string;
}

/**
 * Runs QEMU with `args` and resolves when it exits, or after stopping it at the time limit or on
 * abort. coreutils `timeout` bounds it too, so a QEMU outlives this process by at most the limit
 * plus a few seconds.
 */
export function runQemu(qemu: string, args: readonly string[], options: QemuRunOptions): Promise<QemuRunResult> {
  const inherit = options.stdio === 'inherit';
  // --foreground keeps the terminal (and Ctrl-C) for QEMU.
  const backstopSeconds = Math.ceil(options.timeoutMs / 1000) + BACKSTOP_EXTRA_SECONDS;
  const bounded = ['timeout', '--foreground', `--kill-after=${KILL_GRACE_MS / 1000}`, String(backstopSeconds), qemu, ...args];
  // `ip netns exec` execs its command, so the child is still `timeout` and its signals still reach QEMU.
  const command = options.netns !== undefined ? ['ip', 'netns', 'exec', options.netns, ...bounded] : bounded;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: [inherit ? 'inherit' : 'ignore', inherit ? 'inherit' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString();
    if (inherit) process.stderr.write(d);
  });

  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, options.timeoutMs);
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) stop();

  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${qemu}: ${err.message}`));
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', stop);
      resolve({ exitCode, signal, timedOut, stderr });
    });
  });
}

/** Paths on a QEMU command line cannot hold commas (option separators) or whitespace. */
export function assertQemuPath(path: string, what: string): string {
  if (/[,\s'"\\]/.test(path)) throw new Error(`${what} ${JSON.stringify(path)} cannot be used on a QEMU command line (comma, space, quote or backslash)`);
  return path;
}
