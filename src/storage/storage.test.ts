import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { migrate, openDatabase } from './database.ts';
import { DuplicateKeyError, type Storage } from '../core/ports.ts';
import { SqlStorage } from './storage.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { MemoryStorage } from '../../test/support/memory-storage.ts';

const NOW = '2026-01-02T03:04:05.000Z';
const hardware = { manufacturer: 'Supermicro', model: 'SYS-1029P-WTR', uuid: '4C4C4544-0042-3510-8052-B3C04F4E3232' };

/** One way to get a fresh Storage: each SQL database, and the in-memory one unit tests use. */
interface StorageKind {
  name: string;
  open(): Promise<{ storage: Storage; close(): Promise<void> }>;
}

const kinds: StorageKind[] = [
  ...(await testDatabaseKinds()).map((kind) => ({
    name: kind.name,
    async open() {
      const testDb = kind.fresh();
      const database = await openDatabase(testDb.url);
      await migrate(database);
      assert.deepEqual(await migrate(database), [], 'migrations are idempotent');
      return {
        storage: new SqlStorage(database),
        async close() {
          await database.close();
          await testDb.cleanup();
        },
      };
    },
  })),
  { name: 'memory (the unit tests\' fake)', open: async () => ({ storage: new MemoryStorage(), close: async () => {} }) },
];

// The storage contract: every implementation of the core's ports passes the same cases.
for (const kind of kinds) {
  describe(`storage on ${kind.name}`, () => {
    let storage: Storage;
    let close: () => Promise<void>;
    before(async () => {
      ({ storage, close } = await kind.open());
    });
    after(async () => close());

    test('the database answers', async () => {
      await storage.ping();
    });

    test('upsertEnrollment creates once, then refreshes only hardware facts', async () => {
      const a = await storage.machines.upsertEnrollment({ service_tag: 'SM1', mac_address: '0c:c4:7a:00:00:01', hardware }, NOW);
      assert.equal(a.created, true);
      assert.equal(a.machine.status, 'enrolled');
      await storage.machines.update(a.machine.id, { hostname: 'db-01', status: 'configured', nixos_config: '{}' }, NOW);
      const b = await storage.machines.upsertEnrollment(
        { service_tag: 'SM1', mac_address: '0c:c4:7a:00:00:02', hardware: { ...hardware, model: 'X' } },
        '2026-01-03T00:00:00.000Z',
      );
      assert.equal(b.created, false);
      assert.equal(b.machine.id, a.machine.id);
      assert.equal(b.machine.hostname, 'db-01');
      assert.equal(b.machine.status, 'configured');
      assert.equal(b.machine.mac_address, '0c:c4:7a:00:00:02');
      assert.equal(b.machine.hardware.model, 'X');
      assert.equal(b.machine.last_seen_at, '2026-01-03T00:00:00.000Z');
    });

    test('list sorts, pages and counts', async () => {
      for (const tag of ['SM3', 'SM2']) {
        await storage.machines.upsertEnrollment({ service_tag: tag, mac_address: '0c:c4:7a:00:00:09', hardware }, NOW);
      }
      const page = await storage.machines.list({ limit: 2, offset: 0, sort: 'service_tag', order: 'desc' });
      assert.deepEqual(page.items.map((m) => m.service_tag), ['SM3', 'SM2']);
      assert.equal(page.total, 3);
      const byModel = await storage.machines.list({ limit: 10, offset: 0, search: 'sys-1029' });
      assert.equal(byModel.total, 2, 'SM1 was re-enrolled as model X');
      const byHostname = await storage.machines.list({ limit: 10, offset: 0, search: 'DB-0' });
      assert.deepEqual(byHostname.items.map((m) => m.service_tag), ['SM1'], 'found by the hostname set after enrollment');
      const sm1 = byHostname.items[0]!;
      await storage.machines.update(sm1.id, { hostname: 'cache-01' }, NOW);
      assert.equal((await storage.machines.list({ limit: 10, offset: 0, search: 'db-01' })).total, 0, 'the old hostname no longer matches');
      assert.equal((await storage.machines.list({ limit: 10, offset: 0, search: 'cache-01' })).total, 1);
      await storage.machines.update(sm1.id, { hostname: 'db-01' }, NOW);
      assert.deepEqual(await storage.machines.countByStatus(), { configured: 1, enrolled: 2 });
    });

    test('a search pages in order and counts every match, also past its last page', async () => {
      const tags = async (offset: number, order: 'asc' | 'desc' = 'asc') => {
        const r = await storage.machines.list({ limit: 2, offset, search: 'sm', sort: 'service_tag', order });
        return [r.items.map((m) => m.service_tag), r.total];
      };
      assert.deepEqual(await tags(0), [['SM1', 'SM2'], 3]);
      assert.deepEqual(await tags(2), [['SM3'], 3]);
      assert.deepEqual(await tags(5), [[], 3]);
      assert.deepEqual(await tags(0, 'desc'), [['SM3', 'SM2'], 3]);
      const none = await storage.machines.list({ limit: 2, offset: 0, search: 'no such machine' });
      assert.deepEqual([none.items, none.total], [[], 0]);
    });

    test('the database allows one active build per machine', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      const b = { machine_id: m.id, config: '{}', hostname: 'db-01', service_tag: 'SM1', boot_token: 't' };
      const first = await storage.builds.create(b, NOW);
      await assert.rejects(storage.builds.create(b, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      const done = await storage.builds.transition(first.id, ['pending'], 'failed', { error: 'x' }, NOW);
      assert.equal(done?.status, 'failed');
      const second = await storage.builds.create(b, NOW);
      assert.equal(second.status, 'pending');
    });

    test('transition is compare-and-set: a build that moved on is not overwritten', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      const active = (await storage.builds.findActiveForMachine(m.id))!;
      assert.ok(await storage.builds.transition(active.id, ['pending'], 'cancelled', {}, NOW));
      assert.equal(await storage.builds.transition(active.id, ['pending', 'building'], 'success', {}, NOW), undefined);
      assert.equal((await storage.builds.findById(active.id))?.status, 'cancelled');
    });

    test('a transaction that throws writes nothing', async () => {
      await assert.rejects(
        storage.transaction(async (tx) => {
          await tx.machines.upsertEnrollment({ service_tag: 'ROLLBACK', mac_address: '0c:c4:7a:00:00:0a', hardware }, NOW);
          await tx.events.record({ kind: 'x', actor: { kind: 'system', name: 'system' }, message: 'x' });
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await storage.machines.findByServiceTag('ROLLBACK'), undefined);
      assert.equal((await storage.events.list({ kind: 'x' })).total, 0);
    });

    test('events filter by machine, kind and actor; newest first', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      await storage.events.record({ kind: 'machine.updated', machineId: m.id, actor: { kind: 'user', name: 'alice' }, message: 'a' });
      await storage.events.record({ kind: 'machine.updated', machineId: m.id, actor: { kind: 'token', name: 'ci' }, message: 'b' });
      await storage.events.record({ kind: 'build.requested', machineId: m.id, actor: { kind: 'user', name: 'alice' }, message: 'c' });
      const alice = await storage.events.list({ actor: 'user:alice' });
      assert.deepEqual(alice.items.map((e) => e.message), ['c', 'a']);
      assert.equal(alice.items[0]!.actor, 'user:alice');
      const updates = await storage.events.list({ machineId: m.id, kind: 'machine.updated' });
      assert.deepEqual(updates.items.map((e) => e.actor), ['token:ci', 'user:alice']);
      assert.equal((await storage.events.list({ actor: 'token' })).total, 1);
    });

    test('a machine\'s BMC, power state and reboot claim; credential sets by name', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      assert.equal(await storage.power.get(m.id), undefined);
      assert.equal(await storage.power.clearBmc(m.id, NOW), false);
      const set = await storage.bmcCredentialSets.insert({ name: 'rack-a', username: 'root', passwordSealed: 'v1:x', now: NOW });
      await assert.rejects(storage.bmcCredentialSets.insert({ name: 'rack-a', username: 'u', passwordSealed: 'v1:y', now: NOW }), DuplicateKeyError);
      const bmc = {
        type: 'redfish' as const,
        address: '10.0.0.5:443',
        username: null,
        password_sealed: null,
        credential_set_id: set.id,
        verify_tls: false,
        tls_fingerprint: null,
        tls_ca_bundle: null,
        auth: 'basic' as const,
        system_id: 'System.Embedded.1',
      };
      const stored = await storage.power.setBmc(m.id, bmc, undefined, NOW);
      assert.deepEqual(stored, { machine_id: m.id, bmc, power_state: 'unknown', checked_at: null, reboot_on_publish: false, reboot_build_id: null });
      assert.equal(await storage.power.claimReboot(m.id, 5), false, 'reboot_on_publish is off');
      await storage.power.setBmc(m.id, { ...bmc, verify_tls: true }, true, NOW);
      assert.equal(await storage.bmcCredentialSets.usageCount(set.id), 1);
      await storage.power.recordState(m.id, 'on', NOW);
      assert.deepEqual(await storage.power.states([m.id, 99999]), [{ machine_id: m.id, power_state: 'on', checked_at: NOW }]);
      assert.equal(await storage.power.claimReboot(m.id, 5), true);
      assert.equal(await storage.power.claimReboot(m.id, 5), false, 'each build once');
      assert.equal(await storage.power.claimReboot(m.id, 4), false, 'never an older build');
      assert.equal(await storage.power.claimReboot(m.id, 6), true);
      const again = (await storage.power.get(m.id))!;
      assert.deepEqual([again.bmc?.verify_tls, again.reboot_on_publish, again.reboot_build_id], [true, true, 6]);
      assert.deepEqual((await storage.power.listWithBmc()).map((p) => p.machine_id), [m.id]);
      const renamed = await storage.bmcCredentialSets.update(set.id, { username: 'admin', passwordSealed: 'v1:z', now: '2026-01-03T00:00:00.000Z' });
      assert.deepEqual([renamed?.username, renamed?.password_sealed, (await storage.bmcCredentialSets.findByName('rack-a'))?.id], ['admin', 'v1:z', set.id]);
      assert.equal(await storage.power.clearBmc(m.id, NOW), true);
      const cleared = (await storage.power.get(m.id))!;
      assert.deepEqual([cleared.bmc, cleared.power_state, cleared.reboot_on_publish], [null, 'unknown', false]);
      assert.deepEqual(await storage.power.listWithBmc(), []);
      assert.deepEqual(await storage.power.states([m.id]), []);
      assert.equal(await storage.bmcCredentialSets.usageCount(set.id), 0);
      assert.equal(await storage.bmcCredentialSets.delete(set.id), true);
      assert.deepEqual(await storage.bmcCredentialSets.list(), []);
      await storage.power.setBmc(m.id, { ...bmc, credential_set_id: null, username: 'root', password_sealed: 'v1:p' }, true, NOW);
    });

    test('deleting a machine deletes its builds and its power record', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      await storage.machines.delete(m.id);
      assert.equal((await storage.builds.listForMachine(m.id, 50, 0)).total, 0);
      assert.equal(await storage.power.get(m.id), undefined);
    });
  });
}
