import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isPlaceholderSerial, isServiceTag, MAC_PATTERN, SERVICE_TAG_PATTERN } from '../../core/validation.ts';
import {
  AGENT_FIXTURES_DIR,
  AGENT_SCRIPT_PATH,
  copyFixture,
  findBusybox,
  makeBusyboxPath,
  makeToolPath,
  removeDir,
  runAgent,
  writeFile,
} from './agent-runner.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- the payload is parsed JSON, checked field by field */

const busybox = findBusybox();
const GiB = 1024 ** 3;

describe('registration agent (busybox sh, fixture trees)', { skip: !busybox }, () => {
  let bbPath: string;
  const cleanup: string[] = [];
  before(() => {
    bbPath = makeBusyboxPath(busybox!);
    cleanup.push(bbPath);
  });
  after(() => cleanup.forEach(removeDir));

  /** --print against a tree, with busybox and the tree's stand-in tools (if any) on PATH. */
  async function print(root: string): Promise<any> {
    const run = await runAgent({ busybox: busybox!, root, path: [join(root, 'tools'), bbPath], args: ['--print'] });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(run.stderr, '');
    return JSON.parse(run.stdout);
  }

  async function printCopy(name: string, edit: (root: string) => void): Promise<any> {
    const root = copyFixture(name);
    cleanup.push(root);
    edit(root);
    return print(root);
  }

  const dmi = (root: string, file: string) => join(root, 'sys/class/dmi/id', file);

  test('Dell PowerEdge R740: DMI serial, 2 sockets, DIMMs from dmidecode, PERC serial from lsblk', async () => {
    const p = await print(join(AGENT_FIXTURES_DIR, 'dell-r740'));
    assert.equal(p.service_tag, '7XK4Q53');
    assert.equal(p.mac_address, '24:6e:96:3a:5c:10');
    const hw = p.hardware;
    assert.deepEqual([hw.manufacturer, hw.model, hw.serial, hw.uuid], ['Dell Inc.', 'PowerEdge R740', '7XK4Q53', '4c4c4544-0058-4b10-8034-b7c04f513533']);
    assert.deepEqual(hw.bios, { vendor: 'Dell Inc.', version: '2.12.2', date: '07/09/2021' });
    assert.deepEqual(hw.cpu, { model: 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz', architecture: 'x86_64', sockets: 2, cores: 40, threads: 80 });
    assert.equal(hw.memory.total_bytes, 395875380 * 1024);
    assert.equal(hw.memory.dimms.length, 12, 'empty slots are left out');
    assert.deepEqual(hw.memory.dimms[0], { locator: 'A1', size_bytes: 32 * GiB, type: 'DDR4', speed_mts: 2933 });
    assert.deepEqual(hw.disks, [
      { name: 'nvme0n1', size_bytes: 3125627568 * 512, model: 'Dell Express Flash NVMe P4610 1.6TB SFF', serial: 'PHLN9430012K1P6AGN', rotational: false, kind: 'nvme' },
      {
        name: 'sda',
        size_bytes: 3749707776 * 512,
        model: 'PERC H740P Mini',
        serial: '64cd98f0b8a3e00028f5a5e204f3cc5b',
        rotational: true,
        kind: 'raid',
        controller: 'Broadcom / LSI MegaRAID Tri-Mode SAS3508 (PERC H740P Mini)',
      },
    ], 'the PERC volume is a logical volume of the RAID controller lspci names');
    assert.deepEqual(hw.nics, [
      { name: 'eno1', mac: '24:6e:96:3a:5c:10', driver: 'bnxt_en', speed_mbps: 10000, link: true },
      { name: 'eno2', mac: '24:6e:96:3a:5c:12', driver: 'bnxt_en', speed_mbps: null, link: false },
      { name: 'eno3', mac: '24:6e:96:3a:5c:14', driver: 'tg3', speed_mbps: null, link: false },
    ], 'lo and the bond (no device link) are not NICs');
    assert.deepEqual(hw.gpus, [{ vendor: 'Matrox', model: 'Integrated Matrox G200eW3 Graphics Controller', pci_address: '0000:03:00.0' }]);
    assert.deepEqual(hw.bmc, { ip: '10.20.0.41', mac: 'd0:94:66:2a:7b:30', channel: 1, ip_source: 'Static Address', netmask: '255.255.255.0', gateway: '10.20.0.1', vlan: 120 }, 'from the recorded `ipmitool lan print 1`');
  });

  test('HPE ProLiant DL380 Gen10: primary MAC is the first NIC with link; no lspci gives the device id', async () => {
    const p = await print(join(AGENT_FIXTURES_DIR, 'hpe-dl380'));
    assert.equal(p.service_tag, 'CZJ9450B2K');
    assert.equal(p.mac_address, '98:03:9b:6e:21:40', 'eno1 comes first but has no link');
    assert.deepEqual([p.hardware.manufacturer, p.hardware.model], ['HPE', 'ProLiant DL380 Gen10']);
    assert.deepEqual(p.hardware.cpu, { model: 'Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz', architecture: 'x86_64', sockets: 2, cores: 24, threads: 48 });
    assert.equal(p.hardware.memory.dimms.length, 12);
    assert.deepEqual(p.hardware.memory.dimms[4], { locator: 'PROC 1 DIMM 10', size_bytes: 16 * GiB, type: 'DDR4', speed_mts: 2933 });
    assert.deepEqual(p.hardware.disks[0].serial, 'S4NANE0N\u0001701234', 'a control character survives as \\u0001');
    assert.deepEqual(p.hardware.disks[1], { name: 'sda', size_bytes: 1875385008 * 512, model: 'LOGICAL VOLUME', serial: null, rotational: true, kind: 'raid', controller: null }, 'a Smart Array volume; no RAID controller on this PCI bus copy');
    assert.equal(p.hardware.bmc, undefined, 'no ipmitool: no BMC, no guess');
    assert.deepEqual(p.hardware.nics.map((n: any) => [n.name, n.driver, n.speed_mbps, n.link]), [
      ['eno1', 'tg3', null, false],
      ['ens1f0np0', 'mlx5_core', 25000, true],
      ['ens1f1np1', 'mlx5_core', 25000, true],
    ]);
    assert.deepEqual(p.hardware.gpus, [{ vendor: 'Matrox', model: '0x0538', pci_address: '0000:01:00.1' }]);
  });

  test('Supermicro SYS-1029P-WTR: one socket, a BMC VGA and a Tesla T4 (3D controller class)', async () => {
    const p = await print(join(AGENT_FIXTURES_DIR, 'supermicro'));
    assert.equal(p.service_tag, 'S348290X9A25847');
    assert.equal(p.hardware.uuid, '00000000-0000-0000-0000-ac1f6b4e2a10');
    assert.deepEqual(p.hardware.cpu, { model: 'Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz', architecture: 'x86_64', sockets: 1, cores: 10, threads: 20 });
    assert.equal(p.hardware.memory.total_bytes, 65669432 * 1024);
    assert.deepEqual(p.hardware.memory.dimms.map((d: any) => [d.locator, d.size_bytes]), [
      ['P1-DIMMA1', 16 * GiB],
      ['P1-DIMMB1', 16 * GiB],
      ['P1-DIMMC1', 16 * GiB],
      ['P1-DIMMD1', 16 * GiB],
    ]);
    assert.deepEqual(p.hardware.disks.map((d: any) => d.name), ['nvme0n1', 'sda'], 'zram is not a disk');
    assert.equal(p.hardware.disks[0].serial, 'S437NE0M900123');
    assert.deepEqual(p.hardware.disks.map((d: any) => [d.kind, d.smart]), [
      ['nvme', { passed: true, power_on_hours: 17322, temperature_c: 38 }],
      ['disk', { passed: false, power_on_hours: 43811, temperature_c: 36 }],
    ], 'SMART from the recorded smartctl output');
    assert.deepEqual(p.hardware.nics.map((n: any) => n.name), ['eno1', 'eno2'], 'a bridge is not a NIC');
    assert.deepEqual(p.hardware.gpus, [
      { vendor: 'ASPEED', model: 'ASPEED Graphics Family', pci_address: '0000:04:00.0' },
      { vendor: 'NVIDIA', model: 'TU104GL [Tesla T4]', pci_address: '0000:3b:00.0' },
    ]);
  });

  test('white box: placeholder serial gives the SMBIOS UUID (lower-case); hostile strings round-trip', async () => {
    const p = await print(join(AGENT_FIXTURES_DIR, 'whitebox-placeholder'));
    assert.equal(p.service_tag, 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff');
    assert.ok(isServiceTag(p.service_tag));
    assert.equal(p.mac_address, 'd0:50:99:d4:3e:71');
    assert.equal(p.hardware.serial, 'To Be Filled By O.E.M.');
    assert.deepEqual(p.hardware.bios, { vendor: 'American Megatrends Inc.', version: 'P3.30 "beta" \\ build\u001b7', date: '05/25/2022' }, 'the invalid byte 0xff is dropped');
    assert.deepEqual(p.hardware.cpu, { model: 'AMD EPYC 7302P 16-Core Processor', architecture: 'x86_64', sockets: 1, cores: 16, threads: 32 });
    assert.equal(p.hardware.memory.dimms, undefined, 'no dmidecode: no DIMMs, no guess');
    assert.deepEqual(p.hardware.disks.map((d: any) => [d.name, d.model]), [['nvme0n1', 'Samsung SSD 980 PRO 1TB'], ['sda', 'Clé USB 3.0']]);
    assert.deepEqual(p.hardware.nics[2], { name: 'eth"x\\1', mac: '70:85:c2:0b:4f:aa', driver: 'r8169', speed_mbps: null, link: false });
    assert.deepEqual(p.hardware.gpus, [{ vendor: 'ASPEED', model: '0x2000', pci_address: '0000:43:00.0' }]);
  });

  test('metal.boot_mac: the NIC that booted is primary, not a BMC USB NIC or a management port that sorts first', async () => {
    const addNic = (root: string, name: string, mac: string, driver: string, carrier: string) => {
      const dir = join(root, 'sys/class/net', name);
      writeFile(join(dir, 'address'), `${mac}\n`);
      writeFile(join(dir, 'carrier'), `${carrier}\n`);
      writeFile(join(dir, 'device/driver/.keep'), '');
      rmSync(join(dir, 'device/driver'), { recursive: true });
      symlinkSync(`../../../../bus/drivers/${driver}`, join(dir, 'device/driver'));
    };
    const layout = (root: string, cmdline: string) => {
      // A Supermicro board: 1G eno1/eno2 without link, the BMC's USB NIC (up, sorts before ens2f0),
      // and the 25G port that network-booted.
      writeFile(join(root, 'sys/class/net/eno1/carrier'), '0\n');
      addNic(root, 'enp0s20f0u1u6', 'be:3a:f2:b6:05:9f', 'cdc_ether', '1');
      addNic(root, 'ens2f0', '0c:42:a1:7e:55:10', 'mlx5_core', '1');
      writeFile(join(root, 'proc/cmdline'), `${cmdline}\n`);
    };
    const byName = await printCopy('supermicro', (root) => layout(root, 'console=ttyS1,115200'));
    assert.equal(byName.mac_address, 'be:3a:f2:b6:05:9f', 'without metal.boot_mac: the BMC USB NIC, the defect metal.boot_mac fixes');
    const booted = await printCopy('supermicro', (root) => layout(root, 'console=ttyS1,115200 metal.boot_mac=0C:42:A1:7E:55:10'));
    assert.equal(booted.mac_address, '0c:42:a1:7e:55:10');
    assert.deepEqual(booted.hardware.nics.filter((n: any) => n.boot).map((n: any) => n.name), ['ens2f0'], 'the booting NIC is marked');
    assert.equal(booted.service_tag, 'S348290X9A25847', 'the identity is still the serial');
    const unknown = await printCopy('supermicro', (root) => layout(root, 'metal.boot_mac=00:11:22:33:44:55'));
    assert.equal(unknown.mac_address, 'be:3a:f2:b6:05:9f', 'a MAC of no NIC here falls back to the first NIC with link');
    const garbage = await printCopy('supermicro', (root) => layout(root, 'metal.boot_mac=${netX/mac}'));
    assert.equal(garbage.mac_address, 'be:3a:f2:b6:05:9f', 'an unexpanded or malformed value is ignored');
  });

  test('white box: board vendor and name from DMI', async () => {
    const p = await printCopy('whitebox-placeholder', (root) => {
      writeFile(dmi(root, 'board_vendor'), 'ASRockRack\n');
      writeFile(dmi(root, 'board_name'), 'ROMED8-2T\n');
    });
    assert.deepEqual([p.hardware.board_vendor, p.hardware.board_name], ['ASRockRack', 'ROMED8-2T']);
  });

  test('BMC: the first LAN channel that answers; no MAC in the output means no BMC', async () => {
    const ch2 = await printCopy('dell-r740', (root) => {
      const tool = join(root, 'tools/ipmitool');
      writeFileSync(tool, readFileSync(tool, 'utf8').replace('  1) exec cat', '  2) exec cat'));
    });
    assert.equal(ch2.hardware.bmc.channel, 2);
    const dhcp = await printCopy('dell-r740', (root) => {
      const out = join(root, 'tools/ipmitool-lan-print-1.txt');
      writeFileSync(out, readFileSync(out, 'utf8').replace('Static Address', 'DHCP Address').replace('10.20.0.41', '0.0.0.0').replace('802.1q VLAN ID          : 120', '802.1q VLAN ID          : Disabled'));
    });
    assert.deepEqual(dhcp.hardware.bmc, { ip: null, mac: 'd0:94:66:2a:7b:30', channel: 1, ip_source: 'DHCP Address', netmask: '255.255.255.0', gateway: '10.20.0.1' });
    const none = await printCopy('dell-r740', (root) => writeFileSync(join(root, 'tools/ipmitool-lan-print-1.txt'), 'Set in Progress         : Set Complete\n'));
    assert.equal(none.hardware.bmc, undefined);
  });

  test('identity: no UUID gives the primary MAC without colons; no link at all gives the first NIC', async () => {
    const noUuid = await printCopy('whitebox-placeholder', (root) => rmSync(dmi(root, 'product_uuid')));
    assert.equal(noUuid.service_tag, 'd05099d43e71');
    assert.equal(noUuid.hardware.uuid, undefined);
    const noLink = await printCopy('whitebox-placeholder', (root) => {
      writeFile(dmi(root, 'product_uuid'), '00000000-0000-0000-0000-000000000000\n');
      writeFile(join(root, 'sys/class/net/enp65s0f1/carrier'), '0\n');
    });
    assert.equal(noLink.service_tag, 'd05099d43e70', 'an all-zero UUID is not an identity either');
    assert.equal(noLink.mac_address, 'd0:50:99:d4:3e:70');
  });

  const uuidCases: Array<[name: string, uuid: string]> = [
    ['the AMI default UUID that many boards share', '03000200-0400-0500-0006-000700080009'],
    ['all ones', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'],
    ['a UUID hidden on a second line', 'garbage\na1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['a malformed UUID', 'a1b2c3d4-e5f6-4711-8899'],
  ];
  for (const [name, uuid] of uuidCases) {
    test(`identity: ${name} is not used; the MAC is`, async () => {
      const p = await printCopy('whitebox-placeholder', (root) => writeFile(dmi(root, 'product_uuid'), `${uuid}\n`));
      assert.equal(p.service_tag, 'd05099d43e71');
      assert.equal(p.hardware.uuid, undefined);
    });
  }

  const serialCases: Array<[name: string, serial: string, tag: string]> = [
    ['surrounding whitespace is stripped', '  CZJ9450B2K \n', 'CZJ9450B2K'],
    ['a serial outside the pattern falls through', 'ABC/123', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['a serial with a space falls through', 'ABC 123', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['a 65-character serial falls through', 'A'.repeat(40) + 'B'.repeat(25), 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['one character repeated is a placeholder', '0000000', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['an empty serial is a placeholder', '\n', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['placeholders are matched without case', 'DEFAULT STRING', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['dots and dashes are serial characters', 'SN-12.34_x', 'SN-12.34_x'],
  ];
  for (const [name, serial, tag] of serialCases) {
    test(`service tag: ${name}`, async () => {
      const p = await printCopy('whitebox-placeholder', (root) => writeFile(dmi(root, 'product_serial'), serial));
      assert.equal(p.service_tag, tag);
      assert.match(p.service_tag, SERVICE_TAG_PATTERN);
    });
  }

  test('the placeholder list matches the server’s, and every entry makes the agent fall back to the UUID', async () => {
    const script = readFileSync(AGENT_SCRIPT_PATH, 'utf8');
    const agentList = /^PLACEHOLDER_SERIALS='([^']*)'$/m.exec(script)?.[1]?.split('|') ?? [];
    const source = readFileSync(new URL('../../core/validation.ts', import.meta.url), 'utf8');
    const serverBlock = /const PLACEHOLDER_SERIALS = new Set\(\s*\[([\s\S]*?)\]/.exec(source)?.[1] ?? '';
    const serverList = [...serverBlock.matchAll(/'([^']*)'/g)].map((m) => m[1]!.toLowerCase());
    assert.ok(serverList.length > 5, 'the server list was found');
    assert.deepEqual([...agentList].sort(), [...serverList].sort());
    for (const value of agentList) assert.ok(isPlaceholderSerial(value), value);
    for (const value of ['To Be Filled By O.E.M.', 'System Serial Number', 'Not Specified', 'None', '0123456789']) {
      const p = await printCopy('whitebox-placeholder', (root) => writeFile(dmi(root, 'product_serial'), `${value}\n`));
      assert.equal(p.service_tag, 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', value);
    }
  });

  test('JSON strings: every control character, DEL, UTF-8 kept, invalid bytes dropped, length capped', async () => {
    const controls = Buffer.from(Array.from({ length: 31 }, (_, i) => i + 1));
    const raw = Buffer.concat([
      Buffer.from('a"b\\c'),
      controls,
      Buffer.from([0x7f]),
      Buffer.from('é€😀'),
      Buffer.from([0xc0, 0x80, 0xed, 0xa0, 0x80, 0x80, 0xfe, 0xf5, 0x80, 0x80, 0x80, 0xe2, 0x82]),
      Buffer.from('z'),
      Buffer.from([0x00]),
      Buffer.from('end\n'),
    ]);
    const long = 'x'.repeat(300);
    const p = await printCopy('dell-r740', (root) => {
      writeFile(dmi(root, 'product_name'), raw);
      writeFile(dmi(root, 'sys_vendor'), long);
    });
    const expected = 'a"b\\c' + controls.toString('latin1') + '\u007fé€😀zend';
    assert.equal(p.hardware.model, expected);
    assert.equal(p.hardware.manufacturer, 'x'.repeat(255), 'capped below the server’s 256-character limit');
  });

  test('a tree with missing pieces still gives valid JSON with what is known', async () => {
    const p = await printCopy('supermicro', (root) => {
      rmSync(join(root, 'sys/class/dmi'), { recursive: true });
      rmSync(join(root, 'proc/cpuinfo'));
      rmSync(join(root, 'tools'), { recursive: true });
    });
    assert.equal(p.service_tag, 'ac1f6b4e2a10');
    assert.equal(p.hardware.manufacturer, undefined);
    assert.deepEqual(p.hardware.bios, {});
    assert.deepEqual(p.hardware.cpu, { architecture: p.hardware.cpu.architecture });
    assert.deepEqual(p.hardware.gpus.map((g: any) => g.model), ['0x2000', '0x1eb8']);
  });

  test('a GPU vendor not in the table is named by lspci, else given as its id', async () => {
    const withLspci = await printCopy('supermicro', (root) => writeFile(join(root, 'sys/bus/pci/devices/0000:3b:00.0/vendor'), '0x10df\n'));
    assert.deepEqual(withLspci.hardware.gpus[1], { vendor: 'NVIDIA Corporation', model: 'TU104GL [Tesla T4]', pci_address: '0000:3b:00.0' });
    const bare = await printCopy('whitebox-placeholder', (root) => writeFile(join(root, 'sys/bus/pci/devices/0000:43:00.0/vendor'), '0x19e5\n'));
    assert.deepEqual(bare.hardware.gpus[0], { vendor: '0x19e5', model: '0x2000', pci_address: '0000:43:00.0' });
  });

  test('a virtio disk (QEMU) has no device/model; its serial comes from the block device', async () => {
    const p = await printCopy('supermicro', (root) => {
      writeFile(join(root, 'sys/block/vda/size'), '4194304\n');
      writeFile(join(root, 'sys/block/vda/queue/rotational'), '1\n');
      writeFile(join(root, 'sys/block/vda/serial'), 'LAB-DISK-1');
    });
    assert.deepEqual(p.hardware.disks.at(-1), { name: 'vda', size_bytes: 2 * GiB, model: null, serial: 'LAB-DISK-1', rotational: true, kind: 'disk' });
  });

  /** A copy of the Dell tree whose `lldpctl` prints `keyvalue` (as lldpd's `lldpctl -f keyvalue` does). */
  function withLldp(keyvalue: string): string {
    const root = copyFixture('dell-r740');
    cleanup.push(root);
    writeFile(join(root, 'lldp.txt'), keyvalue);
    writeFile(join(root, 'tools', 'lldpctl'), `#!/bin/sh\n[ "$1 $2" = "-f keyvalue" ] || exit 64\ncat '${join(root, 'lldp.txt')}'\n`);
    chmodSync(join(root, 'tools', 'lldpctl'), 0o755);
    return root;
  }

  test('LLDP: each NIC gets the first neighbour lldpctl reports on it; ids keep their subtype; the port VLAN is the pvid', async () => {
    const root = withLldp(
      [
        'lldp.eno1.via=LLDP',
        'lldp.eno1.rid=1',
        'lldp.eno1.chassis.mac=44:4c:a8:12:34:56',
        'lldp.eno1.chassis.name=leaf-r12-a',
        'lldp.eno1.chassis.descr=Arista Networks EOS version 4.28.3M running on an Arista DCS-7050SX3-48YC8',
        'lldp.eno1.chassis.mgmt-ip=10.0.12.1',
        'lldp.eno1.chassis.mgmt-ip=fd00::12:1',
        'lldp.eno1.chassis.Bridge.enabled=on',
        'lldp.eno1.port.ifname=Ethernet12',
        'lldp.eno1.port.descr=r12-u07 eno1',
        'lldp.eno1.port.ttl=120',
        'lldp.eno1.vlan.vlan-id=10',
        'lldp.eno1.vlan=storage',
        'lldp.eno1.vlan.vlan-id=100',
        'lldp.eno1.vlan.pvid=yes',
        'lldp.eno1.vlan=servers',
        // A second neighbour on the same link (an unmanaged switch passing frames through): not taken.
        'lldp.eno1.via=LLDP',
        'lldp.eno1.chassis.mac=00:11:22:33:44:55',
        'lldp.eno1.chassis.name=somebody-else',
        'lldp.eno1.port.ifname=Ethernet99',
        // eno2 has no link; lldpd still heard a switch there: kept.
        'lldp.eno2.via=LLDP',
        'lldp.eno2.chassis.local=oob-sw-3',
        'lldp.eno2.port.local=Gi1/0/7',
        // No NIC of this machine is called eno; its keys are not eno1's or eno2's.
        'lldp.eno.via=LLDP',
        'lldp.eno.chassis.name=wrong',
      ].join('\n') + '\n',
    );
    const nics = (await print(root)).hardware.nics as any[];
    const byName = Object.fromEntries(nics.map((n) => [n.name, n.lldp]));
    assert.deepEqual(byName.eno1, {
      chassis_id: '44:4c:a8:12:34:56',
      chassis_id_type: 'mac',
      system_name: 'leaf-r12-a',
      system_description: 'Arista Networks EOS version 4.28.3M running on an Arista DCS-7050SX3-48YC8',
      port_id: 'Ethernet12',
      port_id_type: 'ifname',
      port_description: 'r12-u07 eno1',
      vlan_id: 100,
      management_address: '10.0.12.1',
    });
    assert.deepEqual(byName.eno2, { chassis_id: 'oob-sw-3', chassis_id_type: 'local', port_id: 'Gi1/0/7', port_id_type: 'local' });
    assert.equal(byName.eno3, undefined, 'no neighbour, no lldp field');
  });

  test('LLDP: what a switch announces is untrusted text: quotes, backslashes, control characters and overlong values stay inside JSON strings', async () => {
    const hostile = 'x"},"service_tag":"EVIL\\\u0007\u001b[2J' + 'A'.repeat(400);
    const root = withLldp(['lldp.eno1.via=LLDP', `lldp.eno1.chassis.name=${hostile}`, `lldp.eno1.port.ifname=$(reboot)\`id\``, 'lldp.eno1.vlan.vlan-id=4095', 'lldp.eno1.vlan.pvid=yes'].join('\n') + '\n');
    const payload = await print(root);
    assert.equal(payload.service_tag, '7XK4Q53', 'the payload around it is unchanged');
    const lldp = payload.hardware.nics.find((n: any) => n.name === 'eno1').lldp;
    assert.equal(lldp.system_name.length, 255);
    assert.ok(lldp.system_name.startsWith('x"},"service_tag":"EVIL\\\u0007\u001b[2J'), lldp.system_name);
    assert.equal(lldp.port_id, '$(reboot)`id`');
    assert.equal(lldp.vlan_id, undefined, '4095 is no VLAN id');
  });

  test('LLDP: a NIC with link whose switch stays silent is waited for up to METAL_AGENT_LLDP_WAIT seconds, then enrolled without it', async () => {
    const root = withLldp('lldp.eno2.via=LLDP\nlldp.eno2.chassis.name=oob-sw-3\n');
    const started = Date.now();
    const run = await runAgent({ busybox: busybox!, root, path: [join(root, 'tools'), bbPath], args: ['--print'], env: { METAL_AGENT_LLDP_WAIT: '2' }, timeoutMs: 30_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const nics = JSON.parse(run.stdout).hardware.nics as any[];
    assert.equal(nics.find((n) => n.name === 'eno1').lldp, undefined);
    assert.equal(nics.find((n) => n.name === 'eno2').lldp.system_name, 'oob-sw-3');
    assert.ok(Date.now() - started >= 2000, 'it asked again until the wait ran out');
  });

  test('LLDP: metal.lldp_wait= on the kernel line wins over the environment; a value that is no number is never run and means the default', async () => {
    const silent = 'lldp.eno2.via=LLDP\nlldp.eno2.chassis.name=oob-sw-3\n';
    const kernel = withLldp(silent);
    writeFile(join(kernel, 'proc', 'cmdline'), 'initrd=initrd metal.lldp_wait=1\n');
    // The environment's 60 s would outlast the 30 s this run is given.
    const quick = await runAgent({ busybox: busybox!, root: kernel, path: [join(kernel, 'tools'), bbPath], args: ['--print'], env: { METAL_AGENT_LLDP_WAIT: '60' }, timeoutMs: 30_000 });
    assert.equal(quick.code, 0, quick.stderr);
    const hostile = withLldp(silent);
    const marker = join(hostile, 'ran');
    writeFile(join(hostile, 'proc', 'cmdline'), `initrd=initrd metal.lldp_wait=$(touch${'${IFS}'}${marker})\n`);
    const run = await runAgent({ busybox: busybox!, root: hostile, path: [join(hostile, 'tools'), bbPath], args: ['--print'], timeoutMs: 30_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(existsSync(marker), false, 'the kernel line\'s text was run');
    assert.equal(JSON.parse(run.stdout).hardware.nics.find((n: any) => n.name === 'eno2').lldp.system_name, 'oob-sw-3');
  });

  test('LLDP: an lldpctl that cannot reach lldpd is given up after 5 s, not the whole wait', async () => {
    const root = copyFixture('dell-r740');
    cleanup.push(root);
    writeFile(join(root, 'tools', 'lldpctl'), '#!/bin/sh\necho "unable to connect to socket /run/lldpd.socket" >&2\nexit 1\n');
    chmodSync(join(root, 'tools', 'lldpctl'), 0o755);
    // A wait of 60 s would outlast the 30 s this run is given.
    const run = await runAgent({ busybox: busybox!, root, path: [join(root, 'tools'), bbPath], args: ['--print'], env: { METAL_AGENT_LLDP_WAIT: '60' }, timeoutMs: 30_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.ok((JSON.parse(run.stdout).hardware.nics as any[]).every((n) => n.lldp === undefined));
  });

  test('bash and GNU tools (the NixOS image’s shell) give the same payloads as busybox', async (t) => {
    const bash = ['/bin/bash', '/usr/bin/bash'].find((p) => existsSync(p));
    if (!bash) return t.skip('no bash on this machine');
    const gnu = makeToolPath(['awk', 'tr', 'cat', 'grep', 'sed', 'uname', 'readlink', 'head', 'date', 'sleep', 'timeout', 'rm', 'cut', 'mkdir']);
    cleanup.push(gnu);
    for (const name of ['dell-r740', 'hpe-dl380', 'supermicro', 'whitebox-placeholder']) {
      const root = join(AGENT_FIXTURES_DIR, name);
      const run = await runAgent({ busybox: busybox!, shell: bash, root, path: [join(root, 'tools'), gnu], args: ['--print'] });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), await print(root), name);
    }
  });

  test('this machine, for real: /sys and /proc with the host’s tools', async () => {
    const run = await runAgent({ busybox: busybox!, root: '', path: (process.env.PATH ?? '').split(':'), args: ['--print'] });
    assert.equal(run.code, 0, run.stderr);
    const p = JSON.parse(run.stdout);
    assert.equal(p.hardware.cpu.threads, cpus().length);
    assert.equal(p.hardware.memory.total_bytes, totalmem());
    if (p.hardware.nics.length > 0) {
      assert.match(p.mac_address, MAC_PATTERN);
      assert.ok(isServiceTag(p.service_tag), p.service_tag);
    }
    for (const disk of p.hardware.disks) assert.ok(Number.isSafeInteger(disk.size_bytes), JSON.stringify(disk));
  });
});
