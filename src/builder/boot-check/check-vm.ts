import type { BootManifest } from '../../images/boot-manifest.ts';
import { assertQemuPath } from '../../vm/qemu-process.ts';

/**
 * The boot-check VM: the published kernel and initrd booted straight by QEMU (no firmware, no
 * iPXE), with the kernel line a boot script would give them, except that `metal.boot_url` points at
 * the check's own listener. Every serial port the image names as a console (`console=ttyS1,…`) is
 * there, each written to its own file: Linux binds its serial console to the first `ttyS` named, so
 * the log must read the port the image chose.
 */

/** Where the image finds "the boot server" inside the VM: QEMU forwards it to the check's listener. */
export const CHECK_BOOT_HOST = '10.0.2.100';
export const CHECK_BOOT_URL = `http://${CHECK_BOOT_HOST}`;

/** What one boot-check VM is made of. */
export interface CheckVm {
  /** The published files, e.g. `<images>/builds/12/bzImage`. */
  kernel: string;
  initrd: string;
  manifest: BootManifest;
  serviceTag: string;
  buildId: number;
  /** The one-off token the image must send back with its booted report. */
  token: string;
  /** QEMU writes serial port N (ttySN) to the N-th file; serialPorts(manifest) of them. */
  consoleLogs: readonly string[];
  /** The command QEMU runs per guest connection to CHECK_BOOT_HOST:80 (stdin/stdout: the connection). */
  forward: readonly string[];
  /** Use KVM (the host can); otherwise TCG, emulated and many times slower. */
  kvm: boolean;
  memoryMb: number;
  cpus: number;
}

/** The check's kernel line: what the machine's boot script would pass, aimed at the check. */
export function checkKernelLine(vm: Pick<CheckVm, 'manifest' | 'serviceTag' | 'buildId' | 'token'>): string {
  return [
    ...(vm.manifest.init ? [`init=${vm.manifest.init}`] : []),
    ...vm.manifest.kernelParams,
    `metal.boot_url=${CHECK_BOOT_URL}`,
    `metal.service_tag=${vm.serviceTag}`,
    `metal.build_id=${vm.buildId}`,
    `metal.boot_token=${vm.token}`,
    // An image without a serial console gets one, or the log would see nothing.
    ...(hasSerialConsole(vm.manifest) ? [] : ['console=ttyS0,115200']),
    // A panic ends the VM at once (-no-reboot) instead of waiting out the time limit.
    'panic=-1',
  ].join(' ');
}

const SERIAL_CONSOLE = /^console=ttyS([0-9]+)(,|$)/;
const MAX_SERIAL_PORTS = 4;

function hasSerialConsole(manifest: BootManifest): boolean {
  return manifest.kernelParams.some((p) => SERIAL_CONSOLE.test(p));
}

/** Serial ports the VM gets: up to the highest `console=ttySN` the image names (ttyS0 to ttyS3), at least one. */
export function serialPorts(manifest: BootManifest): number {
  const named = manifest.kernelParams.map((p) => SERIAL_CONSOLE.exec(p)?.[1]).filter((n) => n !== undefined).map(Number);
  return Math.min(MAX_SERIAL_PORTS, Math.max(0, ...named.filter((n) => n < MAX_SERIAL_PORTS)) + 1);
}

/**
 * Memory for the VM: a netboot initrd is unpacked into RAM (NixOS keeps its store's squashfs
 * there), so three times its size on top of 768 MiB for the system, and at least 1 GiB.
 */
export function checkMemoryMb(initrdBytes: number): number {
  const mb = Math.ceil((3 * initrdBytes) / 2 ** 20) + 768;
  return Math.max(1024, Math.ceil(mb / 256) * 256);
}

/**
 * QEMU's arguments: no firmware, no disk, no display; one virtio NIC on a user network confined
 * with `restrict=on`, so the image reaches nothing but the check's listener (through `guestfwd`),
 * never the builder's own network.
 */
export function checkVmArguments(vm: CheckVm): string[] {
  assertQemuPath(vm.kernel, 'boot check: kernel path');
  assertQemuPath(vm.initrd, 'boot check: initrd path');
  for (const log of vm.consoleLogs) assertQemuPath(log, 'boot check: console log path');
  if (vm.consoleLogs.length < 1 || vm.consoleLogs.length > MAX_SERIAL_PORTS) throw new Error(`boot check: 1 to ${MAX_SERIAL_PORTS} console logs, not ${vm.consoleLogs.length}`);
  for (const word of vm.forward) assertQemuPath(word, 'boot check: forwarder path');
  if (!/^[A-Za-z0-9._-]+$/.test(vm.serviceTag) || !/^[A-Za-z0-9_-]+$/.test(vm.token) || !Number.isSafeInteger(vm.buildId)) {
    throw new Error('boot check: service tag, build id or token has characters a kernel line cannot carry');
  }
  const netdev = ['user', 'id=n0', 'restrict=on', `guestfwd=tcp:${CHECK_BOOT_HOST}:80-cmd:${vm.forward.join(' ')}`].join(',');
  return [
    '-name', `metal-boot-check-${vm.buildId}`,
    '-accel', vm.kvm ? 'kvm' : 'tcg',
    '-machine', 'q35',
    '-cpu', 'max',
    '-m', String(vm.memoryMb),
    '-smp', String(vm.cpus),
    '-nodefaults',
    '-display', 'none',
    '-monitor', 'none',
    '-no-reboot',
    '-kernel', vm.kernel,
    '-initrd', vm.initrd,
    '-append', checkKernelLine(vm),
    '-netdev', netdev,
    '-device', 'virtio-net-pci,netdev=n0',
    '-device', 'virtio-rng-pci',
    ...vm.consoleLogs.flatMap((log) => ['-serial', `file:${log}`]),
  ];
}
