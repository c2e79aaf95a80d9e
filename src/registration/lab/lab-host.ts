import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { findQemu } from '../../vm/qemu-process.ts';
import { isExecutable } from '../../core/executables.ts';

/** Where the lab finds its host parts (Debian packages linux-image-cloud-amd64 and busybox-static). */
export interface LabHost {
  /** e.g. `/boot/vmlinuz-6.1.0-56-cloud-amd64` */
  kernel: string;
  /** e.g. `6.1.0-56-cloud-amd64` */
  kernelVersion: string;
  /** e.g. `/bin/busybox` (busybox-static) */
  busybox: string;
}

/** Firmware and binaries a lab VM needs besides the kernel and busybox. */
export interface LabFirmware {
  qemu: string;
  /** OVMF code, read-only. */
  ovmfCode: string;
  /** OVMF variable store template, copied per VM. */
  ovmfVars: string;
  /** iPXE for UEFI, driving the NIC through the firmware. */
  snponly: string;
}

const BOOT_DIR = '/boot';
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const SNPONLY = '/usr/lib/ipxe/snponly.efi';
/** OVMF that enforces Secure Boot (needs SMM), and variables whose PK, KEK and db are Debian's snakeoil certificate. */
const OVMF_CODE_SECURE = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd';
const OVMF_VARS_SNAKEOIL = '/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd';

/** A missing host part; the message names the package that provides it. */
export class LabHostError extends Error {
  constructor(message: string) {
    super(`lab: ${message}`);
    this.name = 'LabHostError';
  }
}

/** Finds the newest cloud kernel (with its modules) and busybox; throws LabHostError naming what is missing. */
export function findLabHost(): LabHost {
  const kernels = existsSync(BOOT_DIR)
    ? readdirSync(BOOT_DIR)
        .map((f) => /^vmlinuz-(.+-cloud-amd64)$/.exec(f)?.[1])
        .filter((v): v is string => v !== undefined && existsSync(join('/lib/modules', v)))
        .sort(compareVersions)
    : [];
  const kernelVersion = kernels.at(-1);
  if (!kernelVersion) throw new LabHostError(`no /boot/vmlinuz-*-cloud-amd64 with modules in /lib/modules; install linux-image-cloud-amd64`);
  const busybox = BUSYBOX_CANDIDATES.find(isExecutable);
  if (!busybox) throw new LabHostError('no busybox; install busybox-static');
  return { kernel: join(BOOT_DIR, `vmlinuz-${kernelVersion}`), kernelVersion, busybox };
}

/** Finds QEMU, OVMF and iPXE's snponly.efi; throws LabHostError naming what is missing. */
export function findLabFirmware(options: { uefi: boolean; secureBoot?: boolean }): LabFirmware {
  const qemu = findQemu();
  if (!qemu) throw new LabHostError('no qemu-system-x86_64; install qemu-system-x86 ipxe-qemu');
  const secure = options.secureBoot === true;
  const ovmfCode = secure ? OVMF_CODE_SECURE : OVMF_CODE;
  const ovmfVars = secure ? OVMF_VARS_SNAKEOIL : OVMF_VARS;
  if (options.uefi || secure) {
    for (const [file, pkg] of [[ovmfCode, 'ovmf'], [ovmfVars, 'ovmf'], [SNPONLY, 'ipxe']] as const) {
      if (!existsSync(file)) throw new LabHostError(`no ${file}; install ${pkg}`);
    }
  }
  return { qemu, ovmfCode, ovmfVars, snponly: SNPONLY };
}

/** Lists what the lab lacks on this host (empty when everything is there), for tests that must skip. */
export function missingLabParts(options: { uefi: boolean }): string[] {
  const missing: string[] = [];
  for (const check of [() => findLabHost(), () => findLabFirmware(options)]) {
    try {
      check();
    } catch (err) {
      missing.push((err as Error).message);
    }
  }
  return missing;
}

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
