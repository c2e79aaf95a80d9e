import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError } from './errors.ts';
import { Notifier } from './notifier.ts';
import { MachineService } from './machine-service.ts';
import { ProfileService } from './profile-service.ts';
import type { Actor } from './types.ts';

const operator: Actor = { kind: 'user', name: 'op', role: 'operator' };

describe('deleting a profile (in memory)', () => {
  test('a profile a machine took after the checks (another transaction) is a conflict, not a failure', async () => {
    const storage = new MemoryStorage();
    const notifier = new Notifier();
    const profiles = new ProfileService(storage, notifier, new BuildLifecycle(storage, notifier));
    const machines = new MachineService(storage, notifier, { async removeMachineImages() {} }, new BuildLifecycle(storage, notifier));
    await profiles.create({ name: 'web' }, operator);
    await machines.enroll({ service_tag: 'RACE0001', mac_address: '52:54:00:00:0a:01', hardware: {} }, { kind: 'machine', name: 'RACE0001' });
    await machines.update('RACE0001', { profile: 'web' }, operator);
    // The checks run before the other transaction committed: they see no machine on the profile.
    const transaction = storage.transaction.bind(storage);
    storage.transaction = (fn) =>
      transaction((tx) => {
        const list = async () => ({ items: [], total: 0 });
        return fn({ ...tx, profiles: tx.profiles, rules: tx.rules, events: tx.events, machines: Object.assign(Object.create(tx.machines) as typeof tx.machines, { list }) });
      });
    await assert.rejects(profiles.remove('web', operator), (err: unknown) => err instanceof ConflictError && /just put to use/.test(err.message));
    assert.ok(await profiles.get('web'), 'the profile is still there');
  });
});
