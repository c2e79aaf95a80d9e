import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { BuildLifecycle } from './build-lifecycle.ts';
import { MachineService } from './machine-service.ts';
import { followNixpkgsPin } from './nixpkgs-pin.ts';
import { Notifier } from './notifier.ts';
import type { Actor } from './types.ts';

const operator: Actor = { kind: 'user', name: 'op', role: 'operator' };

/** A fleet configured by a server whose builders use nixpkgs `pin`. */
async function fleet(pin: string) {
  const storage = new MemoryStorage();
  const notifier = new Notifier();
  const builds = new BuildLifecycle(storage, notifier, { nixpkgs: pin });
  const machines = new MachineService(storage, notifier, { async removeMachineImages() {} }, builds);
  for (const [tag, mac, configured] of [['PIN0001', '52:54:00:00:0b:01', true], ['PIN0002', '52:54:00:00:0b:02', true], ['PIN0003', '52:54:00:00:0b:03', false]] as const) {
    await machines.enroll({ service_tag: tag, mac_address: mac, hardware: {} }, { kind: 'machine', name: tag });
    if (configured) await machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }\n' }, operator);
  }
  return { storage, machines };
}

describe('followNixpkgsPin', () => {
  test('the first start records the pin; hashes computed with it stay, and no event is written', async () => {
    const { storage } = await fleet('"/srv/nixpkgs-a"');
    assert.deepEqual(await followNixpkgsPin(storage, '"/srv/nixpkgs-a"'), { previous: undefined, changed: 0 });
    assert.equal(await storage.settings.get('desired_hash_nixpkgs'), '"/srv/nixpkgs-a"');
    assert.equal((await storage.events.list({})).items.filter((e) => e.kind === 'fleet.nixpkgs_changed').length, 0);
    assert.equal(await followNixpkgsPin(storage, '"/srv/nixpkgs-a"'), undefined, 'nothing to do when the pin is current');
  });

  test('a new pin changes every configured machine’s desired hash, once, and says so', async () => {
    const { storage, machines } = await fleet('"/srv/nixpkgs-a"');
    await followNixpkgsPin(storage, '"/srv/nixpkgs-a"');
    // Pretend both configured machines were built from their current configuration: up to date.
    for (const tag of ['PIN0001', 'PIN0002']) {
      const m = (await storage.machines.findByServiceTag(tag))!;
      const row = (storage as unknown as { live(): { machines: Array<{ id: number; desired_hash: string | null; built_hash: string | null }> } }).live().machines.find((r) => r.id === m.id)!;
      row.built_hash = row.desired_hash;
    }
    assert.equal((await machines.get('PIN0001')).out_of_date, false);

    assert.deepEqual(await followNixpkgsPin(storage, '"/srv/nixpkgs-b"'), { previous: '"/srv/nixpkgs-a"', changed: 2 });
    for (const tag of ['PIN0001', 'PIN0002']) assert.equal((await machines.get(tag)).out_of_date, true, tag);
    assert.equal((await machines.get('PIN0003')).out_of_date, false, 'a machine that cannot be built is not out of date');
    const events = (await storage.events.list({})).items.filter((e) => e.kind === 'fleet.nixpkgs_changed');
    assert.equal(events.length, 1);
    assert.match(events[0]!.message, /nixpkgs-b.*was.*nixpkgs-a.*2 machines/);
    assert.equal(await followNixpkgsPin(storage, '"/srv/nixpkgs-b"'), undefined);

    // Back to the first pin: the hashes match what was built again.
    assert.deepEqual(await followNixpkgsPin(storage, '"/srv/nixpkgs-a"'), { previous: '"/srv/nixpkgs-b"', changed: 2 });
    assert.equal((await machines.get('PIN0001')).out_of_date, false);
  });
});
