import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Machine } from '../../core/types.ts';
import { buildAnsibleInventory, groupName } from './ansible-inventory.ts';

function machine(id: number, overrides: Partial<Machine> = {}): Machine {
  return {
    id,
    service_tag: `TAG${id}`,
    mac_address: `52:54:00:00:00:0${id}`,
    status: 'enrolled',
    hostname: null,
    description: null,
    hardware: { manufacturer: 'Dell Inc.', model: 'PowerEdge R740', cpu: { model: 'Xeon', cores: 8 }, memory: { total_bytes: 1024 } },
    nixos_config: null,
    nixos_files: null,
    labels: {},
    profile: null,
    out_of_date: false,
    last_build_id: null,
    booted_build_id: null,
    booted_at: null,
    enrolled_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    last_seen_at: null,
    identity_conflict: null,
    ...overrides,
  };
}

describe('group names', () => {
  const cases: Array<[string, string, string | null, string]> = [
    ['lower-cases and joins words with one underscore', 'vendor', 'Dell Inc.', 'vendor_dell_inc'],
    ['drops leading and trailing separators', 'model', '  (PowerEdge) R740 ', 'model_poweredge_r740'],
    ['keeps digits', 'model', 'Standard PC (Q35 + ICH9, 2009)', 'model_standard_pc_q35_ich9_2009'],
    ['names an absent value unknown', 'vendor', null, 'vendor_unknown'],
    ['names a value of only symbols unknown', 'vendor', '---', 'vendor_unknown'],
    ['replaces non-ASCII letters', 'vendor', 'Fujitsu Ümlaut', 'vendor_fujitsu_mlaut'],
  ];
  for (const [rule, prefix, value, expected] of cases) {
    test(rule, () => assert.equal(groupName(prefix, value), expected));
  }
});

describe('the Ansible inventory', () => {
  test('hosts are named by hostname, or service tag without one, with their facts', () => {
    const inv = buildAnsibleInventory([machine(1, { hostname: 'web-01', status: 'ready' }), machine(2)]);
    assert.deepEqual(Object.keys(inv._meta.hostvars), ['web-01', 'TAG2']);
    assert.deepEqual(inv._meta.hostvars['web-01'], {
      service_tag: 'TAG1',
      mac: '52:54:00:00:00:01',
      status: 'ready',
      hostname: 'web-01',
      manufacturer: 'Dell Inc.',
      model: 'PowerEdge R740',
      cpu: { model: 'Xeon', cores: 8 },
      memory: 1024,
      metal_id: 1,
      last_build_id: null,
      switch_ports: [],
    });
    assert.equal('ansible_host' in inv._meta.hostvars['web-01']!, false);
  });

  test('groups by status, vendor and model, all listed under all.children', () => {
    const inv = buildAnsibleInventory([
      machine(1, { hostname: 'web-01', status: 'ready' }),
      machine(2, { hardware: { manufacturer: 'QEMU', model: 'Standard PC (i440FX + PIIX, 1996)' } }),
    ]);
    assert.deepEqual(inv.status_ready, { hosts: ['web-01'] });
    assert.deepEqual(inv.status_enrolled, { hosts: ['TAG2'] });
    assert.deepEqual(inv.vendor_dell_inc, { hosts: ['web-01'] });
    assert.deepEqual(inv.vendor_qemu, { hosts: ['TAG2'] });
    assert.deepEqual(inv.model_standard_pc_i440fx_piix_1996, { hosts: ['TAG2'] });
    assert.deepEqual(inv.all.children, ['ungrouped', 'model_poweredge_r740', 'model_standard_pc_i440fx_piix_1996', 'status_enrolled', 'status_ready', 'vendor_dell_inc', 'vendor_qemu']);
  });

  test('groups by the switches a machine is cabled to (LLDP), once each, with its ports in the host\'s facts', () => {
    const cabled = (ports: Array<[string, Record<string, string>]>) => ({ manufacturer: 'Dell Inc.', nics: ports.map(([name, lldp]) => ({ name, lldp })) });
    const inv = buildAnsibleInventory([
      machine(1, { hostname: 'web-01', hardware: cabled([['eno1', { system_name: 'leaf-r12-a', port_id: 'Ethernet12' }], ['eno2', { system_name: 'leaf-r12-b', port_id: 'Ethernet12' }]]) }),
      machine(2, { hardware: cabled([['eno1', { system_name: 'Leaf-R12-A', port_id: 'Ethernet13' }], ['eno2', { system_name: 'leaf-r12-a', port_id: 'Ethernet14' }]]) }),
      machine(3, { hardware: cabled([['eno1', { chassis_id: '44:4c:a8:00:00:09', port_description: 'Gi1/0/7' }]]) }),
    ]);
    assert.deepEqual(inv.switch_leaf_r12_a, { hosts: ['web-01', 'TAG2'] });
    assert.deepEqual(inv.switch_leaf_r12_b, { hosts: ['web-01'] });
    assert.deepEqual(inv.switch_44_4c_a8_00_00_09, { hosts: ['TAG3'] }, 'a switch without a name is grouped by its chassis id');
    assert.deepEqual(inv._meta.hostvars['web-01']!.switch_ports, [
      { nic: 'eno1', switch: 'leaf-r12-a', port: 'Ethernet12' },
      { nic: 'eno2', switch: 'leaf-r12-b', port: 'Ethernet12' },
    ]);
  });

  test('a hostname used twice keeps the second machine under its service tag', () => {
    const inv = buildAnsibleInventory([machine(2, { hostname: 'web' }), machine(1, { hostname: 'web' })]);
    assert.deepEqual(Object.keys(inv._meta.hostvars), ['web', 'TAG2']);
    assert.equal(inv._meta.hostvars.web!.service_tag, 'TAG1');
  });

  test('missing hardware facts are null, not absent', () => {
    const inv = buildAnsibleInventory([machine(1, { hardware: {} })]);
    const vars = inv._meta.hostvars.TAG1!;
    assert.equal(vars.manufacturer, null);
    assert.equal(vars.cpu, null);
    assert.equal(vars.memory, null);
    assert.deepEqual(inv.vendor_unknown, { hosts: ['TAG1'] });
  });

  test('an empty fleet is a valid inventory', () => {
    assert.deepEqual(buildAnsibleInventory([]), { _meta: { hostvars: {} }, all: { children: ['ungrouped'] }, ungrouped: { hosts: [] } });
  });
});
