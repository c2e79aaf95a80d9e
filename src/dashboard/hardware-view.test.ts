import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_RAW_CHARS, boundedJson, clip, cpuSummary, diskKindText, shortCpuModel, switchPortText, totalDiskBytes, viewHardware } from './hardware-view.ts';

describe('viewHardware', () => {
  test('a NIC\'s switch port: name and port id, else chassis id and port description; nothing when the neighbour says nothing usable', () => {
    const ports = viewHardware({
      nics: [
        { name: 'a', lldp: { system_name: 'leaf-r12-a', port_id: 'Ethernet12', port_description: 'r12-u07', vlan_id: 100 } },
        { name: 'b', lldp: { chassis_id: '44:4c:a8:00:00:09', port_description: 'Gi1/0/7' } },
        { name: 'c', lldp: { system_name: 'oob-sw-3' } },
        { name: 'd', lldp: { vlan_id: 5 } },
        { name: 'e', lldp: ['not', 'an', 'object'] },
        { name: 'f' },
      ],
    }).nics.map((n) => switchPortText(n.lldp));
    assert.deepEqual(ports, ['leaf-r12-a Ethernet12 (r12-u07) · VLAN 100', '44:4c:a8:00:00:09 Gi1/0/7', 'oob-sw-3 ?', '—', '—', '—']);
  });

  test('reads the agent payload into typed fields', () => {
    const view = viewHardware({
      manufacturer: 'Dell Inc.',
      model: 'PowerEdge R740',
      cpu: { model: 'Intel Xeon Gold 6230', architecture: 'x86_64', sockets: 2, cores: 40, threads: 80 },
      memory: { total_bytes: 412316860416, dimms: [{ locator: 'A1', size_bytes: 34359738368, type: 'DDR4', speed_mts: 2933 }] },
      disks: [
        { name: 'sda', size_bytes: 960197124096, rotational: false },
        { name: 'sdb', size_bytes: 4000787030016, rotational: true },
      ],
      nics: [{ name: 'eno1', mac: '52:54:00:12:34:56', speed_mbps: 25000, link: true }],
      gpus: [{ vendor: 'NVIDIA', model: 'A100', pci_address: '0000:01:00.0' }],
      rack: 'R12',
    });
    assert.equal(view.memoryBytes, 412316860416);
    assert.equal(view.dimms[0]?.speedMts, 2933);
    assert.equal(totalDiskBytes(view), 960197124096 + 4000787030016);
    assert.equal(view.nics[0]?.speedMbps, 25000);
    assert.equal(view.gpus[0]?.pciAddress, '0000:01:00.0');
    assert.deepEqual(view.extra, { rack: 'R12' });
    assert.equal(cpuSummary(view), '2 × Intel Xeon Gold 6230 · 40 cores / 80 threads');
  });

  test('a disk\'s kind: a RAID volume with its controller, NVMe, else HDD or SSD by the rotational flag', () => {
    const kinds = viewHardware({
      disks: [
        { name: 'sda', kind: 'raid', controller: 'Broadcom / LSI MegaRAID Tri-Mode SAS3508 (PERC H740P Mini)', rotational: true },
        { name: 'sdb', kind: 'raid', controller: null, rotational: false },
        { name: 'nvme0n1', kind: 'nvme', rotational: false },
        { name: 'sdc', kind: 'disk', rotational: true },
        { name: 'sdd', rotational: false },
        { name: 'sde', kind: 7 },
      ],
    }).disks.map(diskKindText);
    assert.deepEqual(kinds, ['RAID volume (PERC H740P Mini)', 'RAID volume', 'NVMe SSD', 'HDD', 'SSD', '—']);
    assert.equal(diskKindText({ kind: 'raid', controller: `Vendor ${'x'.repeat(60)}`, rotational: null }), `RAID volume (Vendor ${'x'.repeat(33)}…)`);
  });

  test('wrong types and missing parts become empty, never an exception', () => {
    const view = viewHardware({ cpu: 'fast', memory: { total_bytes: '1 GB', dimms: 'many' }, disks: [null, 3, { size_bytes: -5 }], nics: {} } as never);
    assert.equal(view.cpu, null);
    assert.equal(view.memoryBytes, null);
    assert.deepEqual(view.dimms, []);
    assert.equal(view.disks.length, 1);
    assert.equal(view.disks[0]?.sizeBytes, null);
    assert.deepEqual(view.nics, []);
    assert.equal(cpuSummary(view), '—');
    assert.equal(viewHardware(undefined).model, null);
  });

  test('CPU models lose trademark marks and filler words', () => {
    assert.equal(shortCpuModel('Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz'), 'Intel Xeon Gold 6230 @ 2.10GHz');
    assert.equal(shortCpuModel('AMD EPYC 7763 64-Core Processor'), 'AMD EPYC 7763 64-Core');
    assert.equal(shortCpuModel('QEMU Virtual CPU version 2.5+'), 'QEMU Virtual CPU version 2.5+');
  });

  test('a single socket with SMT off shows cores only', () => {
    assert.equal(cpuSummary(viewHardware({ cpu: { model: 'QEMU Virtual CPU', sockets: 1, cores: 2, threads: 2 } })), 'QEMU Virtual CPU · 2 cores');
  });
});

describe('bounded rendering of reported values', () => {
  test('boundedJson: pretty JSON as before for small values', () => {
    const value = { rack: 'R12', slots: [1, 2], empty: {}, none: [], nested: { a: null } };
    assert.equal(boundedJson(value), JSON.stringify(value, null, 2));
  });

  test('boundedJson: a document stored 5,000 levels deep renders cut at 16 levels, without a stack overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = { x: deep };
    const text = boundedJson({ deep });
    assert.ok(text.includes('{…}'));
    assert.ok(text.length < 2000, `${text.length} characters`);
  });

  test('boundedJson: a large document is cut at MAX_RAW_CHARS with a note', () => {
    const text = boundedJson({ items: Array.from({ length: 100_000 }, (_, i) => `item-${i}`) });
    assert.ok(text.length <= MAX_RAW_CHARS + 40);
    assert.match(text, /… \(cut at 8192 characters\)$/);
  });

  test('clip cuts long cells with an ellipsis', () => {
    assert.equal(clip('short'), 'short');
    assert.equal(clip('x'.repeat(500)).length, 128);
    assert.ok(clip('x'.repeat(500)).endsWith('…'));
  });
});
