import { createHash } from 'node:crypto';
import { MAC_PATTERN, SERVICE_TAG_PATTERN, UUID_PATTERN } from '../../core/validation.ts';

/** The guest-side address of the boot server: QEMU forwards it to the boot listener on 127.0.0.1. */
export const LAB_BOOT_HOST = '10.0.2.100';
/** The METAL_BOOT_URL a server must use for lab machines to reach it. */
export const LAB_BOOT_URL = `http://${LAB_BOOT_HOST}`;

/** A virtual machine of the lab, validated: every field is safe to put on a QEMU command line. */
export interface LabMachine {
  /** DMI system serial, the service tag. e.g. `DEMO001` */
  serial: string;
  uefi: boolean;
  /**
   * UEFI with Secure Boot enforced: OVMF whose db trusts Debian's snakeoil certificate only, so it
   * runs iPXE and kernels signed with that key (METAL_SECURE_BOOT_KEY) and refuses anything else.
   */
  secureBoot: boolean;
  /** e.g. `52:54:00:ab:cd:ef` */
  mac: string;
  memoryMb: number;
  cpus: number;
  diskGb: number;
  /** The boot listener's port on 127.0.0.1. */
  bootPort: number;
  manufacturer: string;
  product: string;
  /** SMBIOS UUID, or undefined to let QEMU leave it unset. */
  uuid: string | undefined;
  /**
   * A second NIC placed before the booting one (a lower PCI address, so Linux names it first), on a
   * network of its own and without a boot ROM: a management port or a BMC's USB NIC that has link but
   * does not PXE-boot. e.g. `52:54:00:aa:00:01`
   */
  managementNicMac?: string;
}

/** Options as a person gives them; anything left out gets a default. */
export interface LabMachineInput {
  serial: string;
  uefi?: boolean;
  /** Implies uefi. */
  secureBoot?: boolean;
  mac?: string;
  memoryMb?: number | string;
  cpus?: number | string;
  diskGb?: number | string;
  bootPort?: number | string;
  manufacturer?: string;
  product?: string;
  uuid?: string;
  managementNicMac?: string;
}

/** A lab machine option that cannot be used; the message names the option and the value. */
export class LabMachineError extends Error {
  constructor(option: string, value: unknown, reason: string) {
    super(`lab: --${option} ${JSON.stringify(value)} is invalid: ${reason}`);
    this.name = 'LabMachineError';
  }
}

const SMBIOS_TEXT = /^[A-Za-z0-9][A-Za-z0-9 .,()_+-]{0,63}$/;

/** Validates the options of a lab machine and fills in defaults (1024 MB, 2 CPUs, 2 GB disk, port 8081). */
export function parseLabMachine(input: LabMachineInput): LabMachine {
  if (!SERVICE_TAG_PATTERN.test(input.serial)) {
    throw new LabMachineError('serial', input.serial, 'expected 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit');
  }
  const mac = (input.mac ?? macForSerial(input.serial)).toLowerCase();
  if (!MAC_PATTERN.test(mac)) throw new LabMachineError('mac', input.mac, 'expected six hex pairs separated by colons');
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new LabMachineError('mac', input.mac, 'a multicast address cannot name a NIC');
  if (input.uuid !== undefined && !UUID_PATTERN.test(input.uuid)) {
    throw new LabMachineError('uuid', input.uuid, 'expected 8-4-4-4-12 hex digits');
  }
  const manufacturer = input.manufacturer ?? 'Metal Lab';
  const product = input.product ?? 'Virtual Server';
  if (!SMBIOS_TEXT.test(manufacturer)) throw new LabMachineError('manufacturer', manufacturer, 'expected letters, digits, spaces and . , ( ) _ + -');
  if (!SMBIOS_TEXT.test(product)) throw new LabMachineError('product', product, 'expected letters, digits, spaces and . , ( ) _ + -');
  const managementNicMac = input.managementNicMac?.toLowerCase();
  if (managementNicMac !== undefined && (!MAC_PATTERN.test(managementNicMac) || (parseInt(managementNicMac.slice(0, 2), 16) & 1) === 1 || managementNicMac === mac)) {
    throw new LabMachineError('management-nic-mac', input.managementNicMac, 'expected a unicast MAC other than the booting NIC’s');
  }
  return {
    ...(managementNicMac !== undefined ? { managementNicMac } : {}),
    serial: input.serial,
    uefi: (input.uefi ?? false) || (input.secureBoot ?? false),
    secureBoot: input.secureBoot ?? false,
    mac,
    memoryMb: integer('memory', input.memoryMb ?? 1024, 128, 65536),
    cpus: integer('cpus', input.cpus ?? 2, 1, 64),
    diskGb: integer('disk-size', input.diskGb ?? 2, 1, 1024),
    bootPort: integer('boot-port', input.bootPort ?? 8081, 1, 65535),
    manufacturer,
    product,
    uuid: input.uuid?.toLowerCase(),
  };
}

/** A stable locally administered MAC for a serial, so every boot of one lab machine has the same NIC. */
export function macForSerial(serial: string): string {
  const digest = createHash('sha256').update(serial).digest();
  return ['52', '54', '00', ...[0, 1, 2].map((i) => digest[i]!.toString(16).padStart(2, '0'))].join(':');
}

function integer(option: string, value: number | string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new LabMachineError(option, value, `expected a whole number from ${min} to ${max}`);
  return n;
}
