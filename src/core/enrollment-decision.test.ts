import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError } from './errors.ts';
import { MachineService } from './machine-service.ts';
import { Notifier } from './notifier.ts';
import type { Actor, Hardware } from './types.ts';

// Identity decisions over the in-memory storage: milliseconds, no database.

const operator: Actor = { kind: 'user', name: 'op', role: 'operator' };
const machineActor = (tag: string): Actor => ({ kind: 'machine', name: tag });

function setup() {
  const storage = new MemoryStorage();
  const notifier = new Notifier();
  const images = { async removeMachineImages() {} };
  const machines = new MachineService(storage, notifier, images, new BuildLifecycle(storage, notifier));
  const enroll = (tag: string, mac: string, uuid?: string) =>
    machines.enroll({ service_tag: tag, mac_address: mac, hardware: uuid ? { uuid, model: 'M' } : { model: 'M' } }, machineActor(tag), '10.0.0.66');
  return { storage, machines, enroll };
}

describe('enrollment identity decisions (in memory)', () => {
  test('a known tag re-enrolled with the same identity refreshes hardware only', async () => {
    const s = setup();
    const first = await s.enroll('SAME0001', '52:54:00:00:01:01', '4c4c4544-0000-1000-8000-000000000101');
    await s.machines.update('SAME0001', { hostname: 'same-1' }, operator);
    const again = await s.machines.enroll(
      { service_tag: 'SAME0001', mac_address: '52:54:00:00:01:01', hardware: { uuid: '4C4C4544-0000-1000-8000-000000000101', model: 'N' } },
      machineActor('SAME0001'),
    );
    assert.equal(again.created, false);
    assert.equal(again.machine.id, first.machine.id);
    assert.equal(again.machine.hardware.model, 'N');
    assert.equal(again.machine.hostname, 'same-1');
    assert.equal(again.machine.identity_conflict, null);
  });

  test('re-enrolled from another switch port: the event says which NIC moved, from where to where', async () => {
    const s = setup();
    const cabled = (nics: Array<[string, string | null, string | null]>) => ({
      model: 'M',
      nics: nics.map(([name, sw, port]) => ({ name, ...(sw || port ? { lldp: { ...(sw ? { system_name: sw } : {}), ...(port ? { port_id: port } : {}) } } : {}) })),
    });
    const enroll = (hardware: Hardware) => s.machines.enroll({ service_tag: 'MOVE0001', mac_address: '52:54:00:00:01:71', hardware }, machineActor('MOVE0001'));
    const { machine } = await enroll(cabled([['eno1', 'leaf-r12-a', 'Ethernet12'], ['eno2', 'oob-sw-3', 'Gi1/0/7'], ['eno3', null, null]]));
    await enroll(cabled([['eno1', 'leaf-r12-a', 'Ethernet12'], ['eno2', 'oob-sw-3', 'Gi1/0/7'], ['eno3', null, null]]));
    await enroll(cabled([['eno1', 'leaf-r13-b', 'swp7'], ['eno2', null, null], ['eno3', null, null]]));
    const [moved, same] = (await s.storage.events.list({ machineId: machine.id })).items;
    assert.equal(same!.message, 'MOVE0001 enrolled again; hardware refreshed', 'the same ports: no change named');
    assert.equal(moved!.message, 'MOVE0001 enrolled again; hardware refreshed; cabling changed (LLDP): eno1: leaf-r12-a Ethernet12 -> leaf-r13-b swp7, eno2: oob-sw-3 Gi1/0/7 -> no LLDP neighbour');
    assert.deepEqual((moved!.data as { cabling_changed: string[] }).cabling_changed, ['eno1: leaf-r12-a Ethernet12 -> leaf-r13-b swp7', 'eno2: oob-sw-3 Gi1/0/7 -> no LLDP neighbour']);
  });

  test('VICTIM claiming Y’s MAC: ConflictError, VICTIM unchanged but flagged, Y keeps its MAC', async () => {
    const s = setup();
    await s.enroll('VICTIM01', '52:54:00:00:02:01');
    await s.enroll('YSERVER1', '52:54:00:00:02:02');
    await assert.rejects(s.enroll('VICTIM01', '52:54:00:00:02:02'), ConflictError);
    const victim = await s.machines.get('VICTIM01');
    assert.equal(victim.mac_address, '52:54:00:00:02:01');
    assert.deepEqual(victim.identity_conflict?.held_by, ['YSERVER1']);
    assert.equal(victim.identity_conflict?.address, '10.0.0.66');
    assert.equal((await s.storage.machines.findBootTarget('mac_address', '52:54:00:00:02:02'))?.serviceTag, 'YSERVER1');
    const kinds = (await s.storage.events.list({ machineId: victim.id })).items.map((e) => e.kind);
    assert.deepEqual(kinds, ['machine.identity_conflict', 'machine.enrolled']);
  });

  test('a new tag claiming a held UUID is created flagged and owns neither value in dispute', async () => {
    const s = setup();
    await s.enroll('UUIDA001', '52:54:00:00:03:01', '4c4c4544-0000-1000-8000-000000000301');
    await assert.rejects(s.enroll('UUIDB001', '52:54:00:00:03:02', '4c4c4544-0000-1000-8000-000000000301'), /created flagged/);
    const b = await s.machines.get('UUIDB001');
    const identity = await s.storage.machines.findIdentity(b.id);
    assert.equal(identity?.system_uuid, null);
    assert.equal(identity?.identity_mac, '52:54:00:00:03:02', 'its own undisputed MAC is its');
    assert.deepEqual(b.identity_conflict?.held_by, ['UUIDA001']);
  });

  test('pre-claimed MAC: accept moves it to the real server, the fake one gives it up; reject only clears', async () => {
    const s = setup();
    await s.enroll('FAKE0001', '52:54:00:00:04:01');
    await assert.rejects(s.enroll('REAL0001', '52:54:00:00:04:01'), ConflictError);
    const accepted = await s.machines.resolveIdentityConflict('REAL0001', 'accept', operator);
    assert.equal(accepted.identity_conflict, null);
    assert.equal((await s.storage.machines.findBootTarget('mac_address', '52:54:00:00:04:01'))?.serviceTag, 'REAL0001');
    const fake = await s.machines.get('FAKE0001');
    assert.equal((await s.storage.machines.findIdentity(fake.id))?.identity_mac, null);
    await assert.rejects(s.machines.resolveIdentityConflict('REAL0001', 'reject', operator), /has no identity conflict to reject/);
    await assert.rejects(s.enroll('FAKE0001', '52:54:00:00:04:01'), ConflictError);
    const rejected = await s.machines.resolveIdentityConflict('FAKE0001', 'reject', operator);
    assert.equal(rejected.identity_conflict, null);
    assert.equal((await s.storage.machines.findBootTarget('mac_address', '52:54:00:00:04:01'))?.serviceTag, 'REAL0001');
  });

  test('firmware placeholder UUIDs and malformed ones are nobody’s', async () => {
    const s = setup();
    await s.enroll('PH000001', '52:54:00:00:05:01', '03000200-0400-0500-0006-000700080009');
    await s.enroll('PH000002', '52:54:00:00:05:02', '03000200-0400-0500-0006-000700080009');
    await s.enroll('PH000003', '52:54:00:00:05:03', 'not-a-uuid');
    for (const tag of ['PH000001', 'PH000002', 'PH000003']) {
      const m = await s.machines.get(tag);
      assert.equal(m.identity_conflict, null, tag);
      assert.equal((await s.storage.machines.findIdentity(m.id))?.system_uuid, null, tag);
    }
  });
});
