import { copyFile, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { findLabFirmware, findLabHost } from './lab-host.ts';
import type { LabMachine } from './lab-machine.ts';
import { qemuArguments, UEFI_TFTP_PATH } from './qemu-args.ts';
import { runQemu, type QemuRunResult } from '../../vm/qemu-process.ts';

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
export type LabRunResult = QemuRunResult;

/**
 * Boots one lab machine in QEMU and resolves when QEMU exits (the guest powered off or panicked), or
 * after killing it at the timeout. Its TFTP root, OVMF variables and (unless given) disk live in a
 * temporary directory removed afterwards.
 */
export async function runLabMachine(machine: LabMachine, options: RunLabMachineOptions): Promise<LabRunResult> {
  const host = findLabHost();
  const firmware = findLabFirmware({ uefi: machine.uefi, secureBoot: machine.secureBoot });
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
      // Under Secure Boot the firmware runs only a signed iPXE: the one the boot server hands out
      // (signed with METAL_SECURE_BOOT_KEY), as a site's proxyDHCP would give it.
      if (machine.secureBoot && !options.network) await writeFile(efiPath, await ipxeFromBootServer(machine.bootPort));
      else await copyFile(firmware.snponly, efiPath);
    }
    const consoleLog = options.console === 'inherit' ? undefined : options.console.logFile;
    const args = qemuArguments(machine, { tftpDir, disk, ovmfVars, busybox: host.busybox, consoleLog, tap: options.network?.tap, uefiHttpBoot: options.network?.uefiHttpBoot }, firmware);
    try {
      return await runQemu(firmware.qemu, args, {
        stdio: options.console === 'inherit' ? 'inherit' : 'ignore',
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        netns: options.network?.netns,
      });
    } catch (err) {
      throw new Error(`lab: ${(err as Error).message}`);
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** `/ipxe/snponly.efi` from the boot server on 127.0.0.1 (what a Secure Boot lab machine runs first). */
async function ipxeFromBootServer(port: number): Promise<Buffer> {
  const url = `http://127.0.0.1:${port}/ipxe/snponly.efi`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new Error(`lab: a Secure Boot machine takes its iPXE from the boot server, and ${url} did not answer: ${(err as Error).message}`);
  }
  if (response.status !== 200) throw new Error(`lab: a Secure Boot machine takes its iPXE from the boot server, and ${url} answered ${response.status} (is snponly.efi in METAL_IPXE_DIR?)`);
  return Buffer.from(await response.arrayBuffer());
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
