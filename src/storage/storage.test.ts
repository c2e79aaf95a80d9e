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

    test('revokeTokensOf revokes only that user\'s live tokens, except the one kept', async () => {
      const alice = await storage.users.insert({ username: 'tok-alice', role: 'operator', passwordHash: 'x', now: NOW });
      const bob = await storage.users.insert({ username: 'tok-bob', role: 'viewer', passwordHash: 'x', now: NOW });
      const mk = (userId: number, name: string) => storage.credentials.insertToken({ tokenHash: `hash-${name}`, userId, name, role: 'viewer', now: NOW, expiresAt: null });
      const [a1, a2, a3, b1] = [await mk(alice.id, 'a1'), await mk(alice.id, 'a2'), await mk(alice.id, 'a3'), await mk(bob.id, 'b1')];
      await storage.credentials.revokeToken(a3.id, NOW);
      const LATER = '2026-01-03T00:00:00.000Z';
      assert.deepEqual(await storage.credentials.revokeTokensOf(alice.id, LATER, a2.id), [a1.id]);
      assert.equal((await storage.credentials.getToken(a1.id))!.revoked_at, LATER);
      assert.equal((await storage.credentials.getToken(a2.id))!.revoked_at, null, 'the kept token stays');
      assert.equal((await storage.credentials.getToken(a3.id))!.revoked_at, NOW, 'an earlier revocation keeps its time');
      assert.equal((await storage.credentials.getToken(b1.id))!.revoked_at, null, 'another user\'s token stays');
      assert.deepEqual(await storage.credentials.revokeTokensOf(alice.id, LATER), [a2.id]);
    });

    test('queueStats counts pending builds, the oldest, and builders by their leases', async () => {
      const m = (await storage.machines.upsertEnrollment({ service_tag: 'QS1', mac_address: '0c:c4:7a:00:00:31', hardware }, NOW)).machine;
      const n = (await storage.machines.upsertEnrollment({ service_tag: 'QS2', mac_address: '0c:c4:7a:00:00:32', hardware }, NOW)).machine;
      const o = (await storage.machines.upsertEnrollment({ service_tag: 'QS3', mac_address: '0c:c4:7a:00:00:33', hardware }, NOW)).machine;
      const before = await storage.builds.queueStats(NOW);
      const build = (machine: { id: number; service_tag: string }, at: string) =>
        storage.builds.create({ machine_id: machine.id, config: '{}', hostname: 'q', service_tag: machine.service_tag, boot_token: 't' }, at);
      await build(m, '2026-01-02T03:00:00.000Z');
      await build(n, '2026-01-02T03:01:00.000Z');
      await build(o, '2026-01-02T03:02:00.000Z');
      const pendingNow = await storage.builds.queueStats(NOW);
      assert.equal(pendingNow.pending, before.pending + 3);
      assert.equal(pendingNow.oldestPendingAt, before.oldestPendingAt ?? '2026-01-02T03:00:00.000Z');
      // builder-a holds a current lease; builder-b's lease expired before NOW.
      assert.ok(await storage.builds.claimNext('builder-a', '2026-01-02T04:00:00.000Z', NOW));
      assert.ok(await storage.builds.claimNext('builder-b', '2026-01-02T03:00:00.000Z', NOW));
      const stats = await storage.builds.queueStats(NOW);
      assert.equal(stats.pending, before.pending + 1);
      assert.equal(stats.liveBuilders, before.liveBuilders + 1);
      assert.equal(stats.lostBuilders, before.lostBuilders + 1);
      for (const machine of [m, n, o]) await storage.machines.delete(machine.id);
      assert.deepEqual(await storage.builds.queueStats(NOW), before);
    });

    test('webhooks: an event writes a delivery for each enabled subscribed endpoint, in its transaction', async () => {
      const all = await storage.webhooks.create({ url: 'https://hooks.example.com/a', events: ['*'], secret: 's'.repeat(16), enabled: true }, NOW);
      const builds = await storage.webhooks.create({ url: 'https://hooks.example.com/b', events: ['build.*'], secret: 's'.repeat(16), enabled: true }, NOW);
      const off = await storage.webhooks.create({ url: 'https://hooks.example.com/c', events: ['*'], secret: 's'.repeat(16), enabled: false }, NOW);
      assert.deepEqual((await storage.webhooks.get(builds.id))?.events, ['build.*']);
      assert.equal('secret' in (await storage.webhooks.get(all.id))!, false, 'the secret is never read back with the endpoint');
      const m = (await storage.machines.upsertEnrollment({ service_tag: 'HOOK1', mac_address: '0c:c4:7a:00:00:41', hardware }, NOW)).machine;
      await storage.events.record({ kind: 'machine.enrolled', machineId: m.id, actor: { kind: 'machine', name: 'HOOK1' }, message: 'HOOK1 enrolled', data: { mac_address: '0c:c4:7a:00:00:41' } });
      await assert.rejects(
        storage.transaction(async (tx) => {
          await tx.events.record({ kind: 'machine.updated', machineId: m.id, actor: { kind: 'system', name: 'system' }, message: 'x' });
          throw new Error('boom');
        }),
        /boom/,
      );
      await storage.transaction((tx) => tx.events.record({ kind: 'build.failed', machineId: m.id, buildId: 99, actor: { kind: 'system', name: 'system' }, message: 'b' }));
      const toAll = await storage.webhooks.deliveries(all.id, 10, 0);
      assert.deepEqual(toAll.items.map((d) => d.event_type), ['build.failed', 'machine.enrolled'], 'the rolled-back event left no delivery');
      assert.deepEqual((await storage.webhooks.deliveries(builds.id, 10, 0)).items.map((d) => d.event_type), ['build.failed']);
      assert.equal((await storage.webhooks.deliveries(off.id, 10, 0)).total, 0);
      const first = toAll.items[1]!;
      assert.equal(first.status, 'pending');
      assert.match(first.delivery_id, /^[0-9a-f-]{36}$/);
      assert.notEqual(first.delivery_id, toAll.items[0]!.delivery_id);

      // One delivery in flight per endpoint, oldest first; a leased one is not claimed twice.
      const later = '2999-01-01T00:00:00.000Z';
      const claimed = await storage.webhooks.claimDue('w1', later, '2999-01-01T00:01:00.000Z', 10);
      assert.deepEqual(claimed.map((d) => [d.webhook_id, d.event_type]), [[all.id, 'machine.enrolled'], [builds.id, 'build.failed']]);
      const body = JSON.parse(claimed[0]!.payload);
      assert.equal(body.type, 'machine.enrolled');
      assert.deepEqual(body.machine, { id: m.id, service_tag: 'HOOK1', hostname: null });
      assert.equal(body.data.mac_address, '0c:c4:7a:00:00:41');
      assert.equal(claimed[0]!.url, 'https://hooks.example.com/a');
      assert.equal(claimed[0]!.secret, 's'.repeat(16));
      assert.deepEqual(await storage.webhooks.claimDue('w2', later, '2999-01-01T00:01:00.000Z', 10), []);
      const delivered = { status: 'delivered' as const, attempts: 1, next_attempt_at: null, last_status_code: 200, last_error: null, response_excerpt: 'ok', delivered_at: later };
      assert.equal(await storage.webhooks.recordAttempt(claimed[0]!.id, 'w2', delivered), false, 'only the lease holder records');
      assert.equal(await storage.webhooks.recordAttempt(claimed[0]!.id, 'w1', delivered), true);
      const next = await storage.webhooks.claimDue('w2', later, '2999-01-01T00:01:00.000Z', 10);
      assert.deepEqual(next.map((d) => [d.webhook_id, d.event_type]), [[all.id, 'build.failed']]);
      const again = await storage.webhooks.redeliver(all.id, first.id, '00000000-0000-4000-8000-000000000001', NOW);
      assert.equal(again?.status, 'pending');
      assert.equal(again?.event_id, first.event_id);
      assert.equal((await storage.webhooks.getDelivery(all.id, first.id))?.status, 'delivered');
      // Finished deliveries older than the cut are pruned; pending ones never.
      assert.equal(await storage.webhooks.pruneFinished('2000-01-01T00:00:00.000Z'), 0);
      assert.equal(await storage.webhooks.pruneFinished('2999-01-01T00:00:00.000Z'), 1, 'only the delivered one');
      assert.deepEqual((await storage.webhooks.deliveries(all.id, 10, 0)).items.map((d) => d.status), ['pending', 'pending']);
      for (const w of [all, builds, off]) assert.equal(await storage.webhooks.delete(w.id), true);
      assert.equal((await storage.webhooks.deliveries(all.id, 10, 0)).total, 0);
      await storage.machines.delete(m.id);
    });

    test('deleting a machine deletes its builds', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      await storage.machines.delete(m.id);
      assert.equal((await storage.builds.listForMachine(m.id, 50, 0)).total, 0);
    });
  });
}
