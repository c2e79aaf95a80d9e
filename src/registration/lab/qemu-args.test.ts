import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LabFirmware } from './lab-host.ts';
import { parseLabMachine } from './lab-machine.ts';
import { qemuArguments } from './qemu-args.ts';

const firmware: LabFirmware = {
  qemu: '/usr/bin/qemu-system-x86_64',
  ovmfCode: '/usr/share/OVMF/OVMF_CODE_4M.fd',
  ovmfVars: '/usr/share/OVMF/OVMF_VARS_4M.fd',
  snponly: '/usr/lib/ipxe/snponly.efi',
};
const files = { tftpDir: '/tmp/vm/tftp', disk: '/tmp/vm/disk.raw', busybox: '/bin/busybox' };

describe('qemuArguments', () => {
  test('a BIOS machine: TCG, confined user networking forwarding the boot host to 127.0.0.1, virtio NIC and disk', () => {
    const machine = parseLabMachine({
      serial: 'ABC123', mac: '52:54:00:12:34:56', memoryMb: 768, cpus: 3, bootPort: 41234,
      manufacturer: 'Dell Inc.', product: 'PowerEdge R740', uuid: '4c4c4544-0042-3510-8052-b3c04f4e3232',
    });
    assert.deepEqual(qemuArguments(machine, files, firmware), [
      '-name', 'metal-lab-ABC123',
      '-accel', 'tcg',
      '-machine', 'pc,graphics=off',
      '-m', '768',
      '-smp', '3',
      '-smbios', 'type=1,manufacturer=Dell Inc.,product=PowerEdge R740,serial=ABC123,uuid=4c4c4544-0042-3510-8052-b3c04f4e3232',
      '-netdev', 'user,id=n0,restrict=on,tftp=/tmp/vm/tftp,bootfile=http://10.0.2.100/nixos/machines/${serial}.ipxe,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 41234',
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,bootindex=1',
      '-drive', 'file=/tmp/vm/disk.raw,format=raw,if=none,id=d0',
      '-device', 'virtio-blk-pci,drive=d0',
      '-nodefaults',
      '-display', 'none',
      '-serial', 'stdio',
      '-monitor', 'none',
      '-no-reboot',
    ]);
  });

  test('a UEFI machine: q35 with OVMF code read-only and its own variable store', () => {
    const args = qemuArguments(parseLabMachine({ serial: 'U1', uefi: true }), { ...files, ovmfVars: '/tmp/vm/OVMF_VARS.fd' }, firmware);
    assert.deepEqual(args.slice(args.indexOf('-machine'), args.indexOf('-machine') + 2), ['-machine', 'q35,graphics=off']);
    assert.deepEqual(args.slice(-4), [
      '-drive', 'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
      '-drive', 'if=pflash,format=raw,unit=1,file=/tmp/vm/OVMF_VARS.fd',
    ]);
  });

  test('a Secure Boot machine: SMM on and the flash secured, so the firmware keeps its keys from the guest', () => {
    const args = qemuArguments(parseLabMachine({ serial: 'S1', secureBoot: true }), { ...files, ovmfVars: '/tmp/vm/OVMF_VARS.fd' }, firmware);
    assert.equal(args[args.indexOf('-machine') + 1], 'q35,graphics=off,smm=on');
    assert.equal(args[args.indexOf('-global') + 1], 'driver=cfi.pflash01,property=secure,value=on');
    const plain = qemuArguments(parseLabMachine({ serial: 'U2', uefi: true }), { ...files, ovmfVars: '/tmp/vm/OVMF_VARS.fd' }, firmware);
    assert.ok(!plain.includes('-global'));
  });

  test('a management NIC comes first, on its own confined network, without a boot ROM; the second NIC boots', () => {
    const args = qemuArguments(parseLabMachine({ serial: 'TWO1', mac: '52:54:00:00:00:02', managementNicMac: '52:54:00:00:00:01' }), files, firmware);
    const netdevs = args.flatMap((a, i) => (a === '-netdev' || (a === '-device' && args[i + 1]!.startsWith('virtio-net')) ? [args[i + 1]!] : []));
    assert.deepEqual(netdevs, [
      'user,id=n1,restrict=on,net=10.0.3.0/24',
      'virtio-net-pci,netdev=n1,mac=52:54:00:00:00:01,romfile=',
      'user,id=n0,restrict=on,tftp=/tmp/vm/tftp,bootfile=http://10.0.2.100/nixos/machines/${serial}.ipxe,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 8081',
      'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:02,bootindex=1',
    ]);
    assert.throws(() => parseLabMachine({ serial: 'TWO1', mac: '52:54:00:00:00:02', managementNicMac: '52:54:00:00:00:02' }), /--management-nic-mac .* other than the booting NIC/);
    assert.throws(() => parseLabMachine({ serial: 'TWO1', managementNicMac: 'x,romfile=/etc/passwd' }), /management-nic-mac/);
  });

  test("on a tap device: no user networking; under UEFI no option ROM, so OVMF's own PXE boots", () => {
    const bios = qemuArguments(parseLabMachine({ serial: 'T1', mac: '52:54:00:00:00:01' }), { ...files, tap: 'tap0' }, firmware);
    assert.equal(bios[bios.indexOf('-netdev') + 1], 'tap,id=n0,ifname=tap0,script=no,downscript=no');
    assert.equal(bios[bios.indexOf('-device') + 1], 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,bootindex=1');
    const uefi = qemuArguments(parseLabMachine({ serial: 'T2', uefi: true, mac: '52:54:00:00:00:02' }), { ...files, tap: 'tap0', ovmfVars: '/tmp/vm/V.fd' }, firmware);
    assert.equal(uefi[uefi.indexOf('-device') + 1], 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:02,romfile=,bootindex=1');
    assert.ok(!uefi.includes('-fw_cfg'));
  });

  test("UEFI HTTP boot turns OVMF's PXE off through fw_cfg", () => {
    const args = qemuArguments(parseLabMachine({ serial: 'H1', uefi: true }), { ...files, tap: 'tap0', ovmfVars: '/tmp/vm/V.fd', uefiHttpBoot: true }, firmware);
    assert.deepEqual(args.slice(-4), ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n']);
  });

  test('refuses a tap name that is not a plain interface name', () => {
    assert.throws(() => qemuArguments(parseLabMachine({ serial: 'T3' }), { ...files, tap: 'tap0,script=/x' }, firmware), /tap device name/);
  });

  test('the serial console goes to a file when one is given', () => {
    const args = qemuArguments(parseLabMachine({ serial: 'F1' }), { ...files, consoleLog: '/tmp/vm/console.log' }, firmware);
    assert.equal(args[args.indexOf('-serial') + 1], 'file:/tmp/vm/console.log');
  });

  test('a comma in an SMBIOS string is doubled, as QEMU reads a literal comma', () => {
    const args = qemuArguments(parseLabMachine({ serial: 'C1', manufacturer: 'Acme, Inc.' }), files, firmware);
    assert.ok(args.includes('type=1,manufacturer=Acme,, Inc.,product=Virtual Server,serial=C1'));
  });

  test('refuses a UEFI machine without its own variable store, and paths that would split a QEMU option', () => {
    assert.throws(() => qemuArguments(parseLabMachine({ serial: 'U1', uefi: true }), files, firmware), /own copy of the OVMF variable store/);
    assert.throws(() => qemuArguments(parseLabMachine({ serial: 'P1' }), { ...files, disk: '/tmp/a,b/disk.raw' }, firmware), /cannot be used on a QEMU command line/);
  });
});
