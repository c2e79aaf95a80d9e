import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { findLabFirmware, findLabHost } from './lab-host.ts';
import type { LabMachine } from './lab-machine.ts';
import { qemuArguments, UEFI_TFTP_PATH } from './qemu-args.ts';

/** How to run one lab VM: where its console goes and how long it may run. */
export interface RunLabMachineOptions {
  /**
   * Where the serial console goes: `inherit` shares this terminal (keys go to the guest; Ctrl-C stops
   * it); `{ logFile }` has QEMU write it to a file, which never drops a byte, unlike a pipe that is
   * drained late.
   */
  console: 'inherit' | { logFile: string };
  /** The VM is killed after this long. */
  timeoutMs: number;
  /** The raw disk image to use (created with the machine's size when missing), so a disk survives boots. */
  diskFile?: string;
  /** Stops the VM early. */
  signal?: AbortSignal;
  /** Runs QEMU inside this network namespace on this tap device instead of user networking (root only). */
  network?: { netns: string; tap: string; uefiHttpBoot?: boolean };
}

/** How a lab VM run ended. */
export interface LabRunResult {
  /** QEMU's exit code (0 when the guest powered off). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** What QEMU itself printed on stderr (not the guest console). */
  stderr: string;
}

const KILL_GRACE_MS = 5000;
const BACKSTOP_EXTRA_SECONDS = 15;

/**
 * Boots one lab machine in QEMU and resolves when QEMU exits (the guest powered off or panicked), or
 * after killing it at the timeout. Its TFTP root, OVMF variables and (unless given) disk live in a
 * temporary directory removed afterwards.
 */
export async function runLabMachine(machine: LabMachine, options: RunLabMachineOptions): Promise<LabRunResult> {
  const host = findLabHost();
  const firmware = findLabFirmware({ uefi: machine.uefi });
  const workDir = await mkdtemp(join(tmpdir(), 'metal-lab-vm-'));
  try {
    const tftpDir = join(workDir, 'tftp');
    await mkdir(tftpDir);
    const disk = options.diskFile ?? join(workDir, 'disk.raw');
    await ensureDisk(disk, machine.diskGb);
    let ovmfVars: string | undefined;
    if (machine.uefi) {
      ovmfVars = join(workDir, 'OVMF_VARS.fd');
      await copyFile(firmware.ovmfVars, ovmfVars);
      const efiPath = join(tftpDir, UEFI_TFTP_PATH);
      await mkdir(dirname(efiPath), { recursive: true });
      await copyFile(firmware.snponly, efiPath);
    }
    const consoleLog = options.console === 'inherit' ? undefined : options.console.logFile;
    const args = qemuArguments(machine, { tftpDir, disk, ovmfVars, busybox: host.busybox, consoleLog, tap: options.network?.tap, uefiHttpBoot: options.network?.uefiHttpBoot }, firmware);
    return await runQemu(firmware.qemu, args, options);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function ensureDisk(path: string, sizeGb: number): Promise<void> {
  const handle = await open(path, 'a');
  try {
    const { size } = await handle.stat();
    if (size === 0) await handle.truncate(sizeGb * 1024 ** 3);
  } finally {
    await handle.close();
  }
}

function runQemu(qemu: string, args: string[], options: RunLabMachineOptions): Promise<LabRunResult> {
  const inherit = options.console === 'inherit';
  // coreutils `timeout` bounds QEMU even if this process dies without stopping it; --foreground keeps
  // the terminal (and Ctrl-C) for QEMU.
  const backstopSeconds = Math.ceil(options.timeoutMs / 1000) + BACKSTOP_EXTRA_SECONDS;
  const bounded = ['timeout', '--foreground', `--kill-after=${KILL_GRACE_MS / 1000}`, String(backstopSeconds), qemu, ...args];
  // `ip netns exec` execs its command, so the child is still `timeout` and its signals still reach QEMU.
  const command = options.network ? ['ip', 'netns', 'exec', options.network.netns, ...bounded] : bounded;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: [inherit ? 'inherit' : 'ignore', inherit ? 'inherit' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
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
      reject(new Error(`lab: could not start ${qemu}: ${err.message}`));
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', stop);
      resolve({ exitCode, signal, timedOut, stderr });
    });
  });
}
