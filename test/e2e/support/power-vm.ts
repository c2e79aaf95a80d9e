import { closeSync, mkdirSync, openSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { findLabFirmware, findLabHost } from '../../../src/registration/lab/lab-host.ts';
import { parseLabMachine, type LabMachineInput } from '../../../src/registration/lab/lab-machine.ts';
import { qemuArguments } from '../../../src/registration/lab/qemu-args.ts';

/**
 * The full command line (QEMU first) of a legacy-BIOS lab VM whose power a simulated BMC controls: the
 * BMC starts it on power on and kills it on power off. Its disk and TFTP root live in `workDir`; the
 * serial console goes to `consoleLog`. The VM powers itself off once the registration agent has enrolled.
 */
export function powerLabVmCommand(input: LabMachineInput, workDir: string, consoleLog: string): string[] {
  const machine = parseLabMachine(input);
  const host = findLabHost();
  const firmware = findLabFirmware({ uefi: false });
  const tftpDir = join(workDir, 'tftp');
  mkdirSync(tftpDir, { recursive: true });
  const disk = join(workDir, 'disk.raw');
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, machine.diskGb * 1024 ** 3);
  closeSync(fd);
  return [firmware.qemu, ...qemuArguments(machine, { tftpDir, disk, busybox: host.busybox, consoleLog }, firmware)];
}
