import { LAB_BOOT_HOST, type LabMachine } from './lab-machine.ts';
import type { LabFirmware } from './lab-host.ts';

/** Files of one VM run, all inside its own work directory. */
export interface LabMachineFiles {
  /** Root of QEMU's TFTP server (holds snponly.efi under UEFI). */
  tftpDir: string;
  /** Raw disk image, attached as virtio-blk. */
  disk: string;
  /** This VM's copy of the OVMF variable store (UEFI only). */
  ovmfVars?: string;
  /** busybox on the host: QEMU runs `busybox nc` per guest connection to the boot server. */
  busybox: string;
  /** Where the serial console is written; unset: QEMU's stdio. */
  consoleLog?: string;
  /**
   * A tap device to use instead of user networking: the VM is on whatever network that device is
   * on (its DHCP, its TFTP). Under UEFI the NIC gets no option ROM, so OVMF's own PXE client boots.
   */
  tap?: string;
  /**
   * UEFI only: turn off OVMF's PXE (IPv4 and IPv6) through its fw_cfg switches, so the firmware boots
   * by UEFI HTTP boot straight away.
   */
  uefiHttpBoot?: boolean;
}

/** The DHCP boot file: iPXE expands `${serial}` and fetches the machine's script from the boot server. */
export const LAB_BOOT_FILE = `http://${LAB_BOOT_HOST}/nixos/machines/\${serial}.ipxe`;

/** Where, inside the TFTP root, UEFI firmware looks for the "file" named by `LAB_BOOT_FILE`. */
export const UEFI_TFTP_PATH = `http:/${LAB_BOOT_HOST}/nixos/machines/\${serial}.ipxe`;

/**
 * The QEMU command line of a lab machine: TCG, user networking confined with `restrict=on` (the guest
 * reaches only QEMU's DHCP/TFTP and the boot server through `guestfwd`), a virtio NIC that boots first,
 * a virtio disk, the serial console (firmware and iPXE included) on stdio or in a file, and no reboot (a panic or power-off ends
 * the process).
 */
export function qemuArguments(machine: LabMachine, files: LabMachineFiles, firmware: LabFirmware): string[] {
  for (const path of [files.tftpDir, files.disk, files.ovmfVars ?? '', files.busybox, files.consoleLog ?? '', firmware.ovmfCode]) {
    if (/[,\s]/.test(path)) throw new Error(`lab: path ${JSON.stringify(path)} cannot be used on a QEMU command line (comma or space)`);
  }
  const smbios = [
    'type=1',
    `manufacturer=${qemuOptionValue(machine.manufacturer)}`,
    `product=${qemuOptionValue(machine.product)}`,
    `serial=${machine.serial}`,
    ...(machine.uuid ? [`uuid=${machine.uuid}`] : []),
  ].join(',');
  if (files.tap !== undefined && !/^[A-Za-z0-9_-]{1,15}$/.test(files.tap)) throw new Error(`lab: tap device name ${JSON.stringify(files.tap)} is invalid`);
  const netdev = files.tap !== undefined
    ? ['tap', 'id=n0', `ifname=${files.tap}`, 'script=no', 'downscript=no'].join(',')
    : [
        'user',
        'id=n0',
        'restrict=on',
        `tftp=${files.tftpDir}`,
        `bootfile=${LAB_BOOT_FILE}`,
        `guestfwd=tcp:${LAB_BOOT_HOST}:80-cmd:${files.busybox} nc 127.0.0.1 ${machine.bootPort}`,
      ].join(',');
  const romfile = files.tap !== undefined && machine.uefi ? ',romfile=' : '';
  const args = [
    '-name', `metal-lab-${machine.serial}`,
    '-accel', 'tcg',
    // graphics=off: the firmware's text console (SeaBIOS, hence iPXE's messages and fetches) goes to
    // the serial console too, so a console log shows what the VM asked the boot server for.
    // Secure Boot: OVMF keeps its variables (the keys) in SMM, out of the guest's reach.
    '-machine', `${machine.uefi ? 'q35' : 'pc'},graphics=off${machine.secureBoot ? ',smm=on' : ''}`,
    ...(machine.secureBoot ? ['-global', 'driver=cfi.pflash01,property=secure,value=on'] : []),
    '-m', String(machine.memoryMb),
    '-smp', String(machine.cpus),
    '-smbios', smbios,
    ...(machine.managementNicMac
      ? [
          // Confined like n0, on another subnet, with nothing to boot: `romfile=` leaves it without a boot ROM.
          '-netdev', 'user,id=n1,restrict=on,net=10.0.3.0/24',
          '-device', `virtio-net-pci,netdev=n1,mac=${machine.managementNicMac},romfile=`,
        ]
      : []),
    '-netdev', netdev,
    '-device', `virtio-net-pci,netdev=n0,mac=${machine.mac}${romfile},bootindex=1`,
    '-drive', `file=${files.disk},format=raw,if=none,id=d0`,
    '-device', 'virtio-blk-pci,drive=d0',
    '-nodefaults',
    '-display', 'none',
    '-serial', files.consoleLog ? `file:${files.consoleLog}` : 'stdio',
    '-monitor', 'none',
    '-no-reboot',
  ];
  if (machine.uefi) {
    if (!files.ovmfVars) throw new Error('lab: a UEFI machine needs its own copy of the OVMF variable store');
    args.push(
      '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${firmware.ovmfCode}`,
      '-drive', `if=pflash,format=raw,unit=1,file=${files.ovmfVars}`,
    );
    if (files.uefiHttpBoot) {
      args.push('-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n');
    }
  }
  return args;
}

/** QEMU reads `,,` as a literal comma inside an option value. */
function qemuOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}
