import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { migrate, openDatabase } from './database.ts';
import { DuplicateKeyError, StillReferencedError, type Storage } from '../core/ports.ts';
import { SqlStorage } from './storage.ts';
import { parseSelector } from '../core/labels.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { MemoryStorage } from '../../test/support/memory-storage.ts';

const NOW = '2026-01-02T03:04:05.000Z';
const LATER = '2026-01-02T03:05:00.000Z';
const hardware = { manufacturer: 'Supermicro', model: 'SYS-1029P-WTR', uuid: '4C4C4544-0042-3510-8052-B3C04F4E3232' };

/** A new machine owning `mac` and, when given, `uuid`. */
function newMachine(tag: string, mac: string, uuid: string | null = null, hw: Record<string, unknown> = hardware) {
  return { service_tag: tag, mac_address: mac, hardware: hw, identity_mac: mac, system_uuid: uuid, identity_conflict: null };
}

/** One way to get a fresh Storage: each SQL database, and the in-memory one unit tests use. */
interface StorageKind {
  name: string;
  /** A fresh store; `another` opens a second handle on the same data, as another replica would. */
  open(): Promise<{ storage: Storage; close(): Promise<void>; another(): Promise<{ storage: Storage; close(): Promise<void> }> }>;
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
        async another() {
          const second = await openDatabase(testDb.url, { poolSize: 8 });
          return { storage: new SqlStorage(second), close: () => second.close() };
        },
      };
    },
  })),
  {
    name: 'memory (the unit tests\' fake)',
    open: async () => {
      const storage = new MemoryStorage();
      return { storage, close: async () => {}, another: async () => ({ storage, close: async () => {} }) };
    },
  },
];

// The storage contract: every implementation of the core's ports passes the same cases.
for (const kind of kinds) {
  describe(`storage on ${kind.name}`, () => {
    let storage: Storage;
    let close: () => Promise<void>;
    let another: () => Promise<{ storage: Storage; close(): Promise<void> }>;
    before(async () => {
      ({ storage, close, another } = await kind.open());
    });
    after(async () => close());

    test('the database answers', async () => {
      await storage.ping();
    });

    test('insertEnrolled creates once; refreshHardware changes only hardware facts and last_seen_at', async () => {
      const a = (await storage.machines.insertEnrolled(newMachine('SM1', '0c:c4:7a:00:00:01', '4c4c4544-0042-3510-8052-b3c04f4e3232'), NOW))!;
      assert.equal(a.status, 'enrolled');
      assert.equal(a.identity_conflict, null);
      assert.equal(await storage.machines.insertEnrolled(newMachine('SM1', '0c:c4:7a:00:00:99'), NOW), undefined, 'the tag exists');
      await storage.machines.update(a.id, { hostname: 'db-01', status: 'configured', nixos_config: '{}' }, NOW);
      const b = await storage.machines.refreshHardware(a.id, { ...hardware, model: 'X' }, '2026-01-03T00:00:00.000Z');
      assert.equal(b.id, a.id);
      assert.equal(b.hostname, 'db-01');
      assert.equal(b.status, 'configured');
      assert.equal(b.mac_address, '0c:c4:7a:00:00:01');
      assert.equal(b.hardware.model, 'X');
      assert.equal(b.last_seen_at, '2026-01-03T00:00:00.000Z');
    });

    test('a MAC or UUID belongs to at most one machine', async () => {
      const sm1 = (await storage.machines.findByServiceTag('SM1'))!;
      await assert.rejects(storage.machines.insertEnrolled(newMachine('DUP1', '0c:c4:7a:00:00:01'), NOW), (err: unknown) => err instanceof DuplicateKeyError);
      await assert.rejects(
        storage.machines.insertEnrolled(newMachine('DUP2', '0c:c4:7a:00:00:0d', '4c4c4544-0042-3510-8052-b3c04f4e3232'), NOW),
        (err: unknown) => err instanceof DuplicateKeyError,
      );
      const conflict = { mac_address: '0c:c4:7a:00:00:01', system_uuid: null, held_by: ['SM1'], claimed_at: NOW, address: '10.0.0.9' };
      const flagged = (await storage.machines.insertEnrolled({ ...newMachine('DUP3', '0c:c4:7a:00:00:01'), identity_mac: null, identity_conflict: conflict }, NOW))!;
      assert.deepEqual(flagged.identity_conflict, conflict);
      assert.deepEqual(await storage.machines.identityHolders('0c:c4:7a:00:00:01', '4c4c4544-0042-3510-8052-b3c04f4e3232'), [
        { id: sm1.id, service_tag: 'SM1', mac: true, uuid: true },
      ]);
      await assert.rejects(storage.machines.update(flagged.id, { identity_mac: '0c:c4:7a:00:00:01' }, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      assert.equal((await storage.machines.findBootTarget('mac_address', '0c:c4:7a:00:00:01'))?.serviceTag, 'SM1');
      const target = await storage.machines.findBootTarget('system_uuid', '4c4c4544-0042-3510-8052-b3c04f4e3232');
      assert.deepEqual([target?.serviceTag, target?.systemUuid, target?.identityConflict], ['SM1', '4c4c4544-0042-3510-8052-b3c04f4e3232', false]);
      assert.equal((await storage.machines.findBootTarget('service_tag', 'DUP3'))?.identityConflict, true);
      const identity = await storage.machines.findIdentity(flagged.id);
      assert.deepEqual([identity?.identity_mac, identity?.system_uuid, identity?.identity_conflict?.address], [null, null, '10.0.0.9']);
      await storage.machines.update(flagged.id, { identity_conflict: null }, NOW);
      assert.equal((await storage.machines.findById(flagged.id))?.identity_conflict, null);
      await storage.machines.delete(flagged.id);
    });

    test('list sorts, pages and counts', async () => {
      for (const [tag, mac] of [['SM3', '0c:c4:7a:00:00:03'], ['SM2', '0c:c4:7a:00:00:02']] as const) {
        await storage.machines.insertEnrolled(newMachine(tag, mac), NOW);
      }
      const page = await storage.machines.list({ limit: 2, offset: 0, sort: 'service_tag', order: 'desc' });
      assert.deepEqual(page.items.map((m) => m.service_tag), ['SM3', 'SM2']);
      assert.equal(page.total, 3);
      const last = await storage.machines.list({ limit: 2, offset: 2, sort: 'service_tag', order: 'desc' });
      assert.deepEqual([last.items.map((m) => m.service_tag), last.total], [['SM1'], 3], 'the last page counts every machine');
      assert.deepEqual(await storage.machines.list({ limit: 2, offset: 5 }), { items: [], total: 3 }, 'past the last page: no rows, still the count');
      const enrolled = await storage.machines.list({ limit: 1, offset: 1, status: 'enrolled', sort: 'service_tag' });
      assert.deepEqual([enrolled.items.map((m) => m.service_tag), enrolled.total], [['SM3'], 2], 'a filter pages and counts its own machines');
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

    test('a search finds machines by the switch and port their NICs are cabled to (LLDP), as enrolled and as refreshed', async () => {
      const cabled = (name: string, port: string) => ({ ...hardware, nics: [{ name: 'eno1', lldp: { system_name: name, port_id: port } }, { name: 'eno2' }] });
      const m = await storage.machines.insertEnrolled(newMachine('SMLLDP', '0c:c4:7a:00:00:77', null, cabled('Leaf-R12-A', 'Ethernet12')), NOW);
      const found = async (search: string) => (await storage.machines.list({ limit: 10, offset: 0, search })).items.map((x) => x.service_tag);
      assert.deepEqual(await found('leaf-r12'), ['SMLLDP']);
      assert.deepEqual(await found('ethernet12'), ['SMLLDP']);
      await storage.machines.refreshHardware(m!.id, cabled('leaf-r13-b', 'swp7'), NOW);
      assert.deepEqual(await found('leaf-r12'), [], 'moved: the old switch no longer matches');
      assert.deepEqual(await found('leaf-r13-b swp7'), ['SMLLDP']);
      await storage.machines.delete(m!.id);
    });

    test('labels are stored whole and selectors pick machines by them', async () => {
      const all = (await storage.machines.list({ limit: 10, offset: 0, sort: 'service_tag' })).items;
      assert.ok(all.every((m) => JSON.stringify(m.labels) === '{}'), 'machines start without labels');
      const [sm1, sm2, sm3] = all;
      await storage.machines.update(sm1!.id, { labels: { role: 'web', rack: 'r12', 'example.com/gpu': '' } }, NOW);
      await storage.machines.update(sm2!.id, { labels: { role: 'web', rack: 'r13' } }, NOW);
      await storage.machines.update(sm3!.id, { labels: { role: 'db', rack: 'r12' } }, NOW);
      assert.deepEqual((await storage.machines.findById(sm1!.id))!.labels, { role: 'web', rack: 'r12', 'example.com/gpu': '' });
      const pick = async (text: string) =>
        (await storage.machines.list({ limit: 10, offset: 0, sort: 'service_tag', selector: parseSelector(text) })).items.map((m) => m.service_tag);
      assert.deepEqual(await pick('role=web'), ['SM1', 'SM2']);
      assert.deepEqual(await pick('role==web,rack=r12'), ['SM1']);
      assert.deepEqual(await pick('rack in (r12, r13),role!=web'), ['SM3']);
      assert.deepEqual(await pick('role notin (web)'), ['SM3']);
      assert.deepEqual(await pick('example.com/gpu'), ['SM1'], 'a key with a prefix and an empty value exists');
      assert.deepEqual(await pick('!example.com/gpu'), ['SM2', 'SM3']);
      assert.deepEqual(await pick('zone!=a'), ['SM1', 'SM2', 'SM3'], '!= also matches machines without the label');
      assert.deepEqual(await pick('zone'), []);
      assert.deepEqual(await pick(''), ['SM1', 'SM2', 'SM3'], 'the empty selector matches every machine');
      const page = await storage.machines.list({ limit: 1, offset: 1, sort: 'service_tag', selector: parseSelector('rack=r12') });
      assert.deepEqual([page.items.map((m) => m.service_tag), page.total], [['SM3'], 2], 'a selector pages and counts');
      const both = await storage.machines.list({ limit: 10, offset: 0, search: 'sm3', selector: parseSelector('rack=r12') });
      assert.deepEqual([both.items.map((m) => m.service_tag), both.total], [['SM3'], 1], 'a selector and a search together');
      for (const m of [sm1!, sm2!, sm3!]) await storage.machines.update(m.id, { labels: {} }, NOW);
      assert.deepEqual(await pick('role'), []);
    });

    test('the database allows one active build per machine', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      const b = (key: string) => ({ machine_id: m.id, config: '{}', hostname: 'db-01', service_tag: 'SM1', boot_token: 't', image_key: key });
      const first = await storage.builds.create(b('key-first-aaaaaaaaaaaa'), NOW);
      await assert.rejects(storage.builds.create(b('key-second-aaaaaaaaaaa'), NOW), (err: unknown) => err instanceof DuplicateKeyError);
      const done = await storage.builds.transition(first.id, ['pending'], 'failed', { error: 'x' }, NOW);
      assert.equal(done?.status, 'failed');
      const second = await storage.builds.create(b('key-third-aaaaaaaaaaaa'), NOW);
      assert.equal(second.status, 'pending');
      assert.equal(await storage.builds.findIdByImageKey('key-first-aaaaaaaaaaaa'), first.id);
      assert.equal(await storage.builds.findIdByImageKey('key-nobody-aaaaaaaaaaa'), undefined);
      assert.equal((await storage.builds.bootFacts(second.id))?.imageKey, 'key-third-aaaaaaaaaaaa');
      assert.equal((await storage.builds.findRecord(second.id))?.image_key, 'key-third-aaaaaaaaaaaa');
    });

    test('transition is compare-and-set: a build that moved on is not overwritten', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      const active = (await storage.builds.findActiveForMachine(m.id))!;
      assert.ok(await storage.builds.transition(active.id, ['pending'], 'cancelled', {}, NOW));
      assert.equal(await storage.builds.transition(active.id, ['pending', 'building'], 'success', {}, NOW), undefined);
      assert.equal((await storage.builds.findById(active.id))?.status, 'cancelled');
    });

    test('a configuration of several files: the map sets the entry text, the text alone is a one-file map', async () => {
      const m = (await storage.machines.insertEnrolled(newMachine('CFG1', '0c:c4:7a:00:00:c1'), NOW))!;
      assert.equal(m.nixos_files, null);
      const files = { 'configuration.nix': '{ ... }: { imports = [ ./hw.nix ]; }', 'hw.nix': '{ ... }: { }', 'modules/a.nix': '"a\\b"\n' };
      const withFiles = await storage.machines.update(m.id, { nixos_files: files }, NOW);
      assert.deepEqual(withFiles.nixos_files, files);
      assert.equal(withFiles.nixos_config, files['configuration.nix']);
      assert.deepEqual((await storage.machines.findByServiceTag('CFG1'))!.nixos_files, files);
      assert.deepEqual(Object.keys((await storage.machines.findById(m.id))!.nixos_files!), Object.keys(files), 'the order is kept');
      const hostnameOnly = await storage.machines.update(m.id, { hostname: 'cfg-1' }, NOW);
      assert.deepEqual(hostnameOnly.nixos_files, files, 'other changes leave the files alone');
      const textOnly = await storage.machines.update(m.id, { nixos_config: '{ ... }: { }' }, NOW);
      assert.deepEqual(textOnly.nixos_files, { 'configuration.nix': '{ ... }: { }' });
      assert.equal(textOnly.nixos_config, '{ ... }: { }');
      const cleared = await storage.machines.update(m.id, { nixos_files: null }, NOW);
      assert.deepEqual([cleared.nixos_config, cleared.nixos_files], [null, null]);
      await storage.machines.update(m.id, { nixos_files: files }, NOW);
      const clearedByText = await storage.machines.update(m.id, { nixos_config: null }, NOW);
      assert.deepEqual([clearedByText.nixos_config, clearedByText.nixos_files], [null, null]);
    });

    test('a build keeps its files; a successful one records its nixpkgs, shown in the recent list', async () => {
      const m = (await storage.machines.findByServiceTag('CFG1'))!;
      const files = { 'configuration.nix': '{ ... }: { imports = [ ./hw.nix ]; }', 'hw.nix': '{ ... }: { }' };
      const b = await storage.builds.create(
        { machine_id: m.id, config: files['configuration.nix'], config_files: files, hostname: 'cfg-1', service_tag: 'CFG1', boot_token: 't', image_key: 'key-cfg1-aaaaaaaaaaaaa' },
        NOW,
      );
      assert.deepEqual(b.config_files, files);
      assert.equal(b.nixpkgs, null);
      assert.deepEqual((await storage.builds.findRecord(b.id))!.config_files, files);
      const nixpkgs = { version: '24.05.1234.abcdef0', revision: 'abcdef0123456789abcdef0123456789abcdef01', source: '/srv/nixpkgs', sha256: null };
      const done = await storage.builds.transition(
        b.id,
        ['pending'],
        'success',
        { nixpkgs_version: nixpkgs.version, nixpkgs_revision: nixpkgs.revision, nixpkgs_source: nixpkgs.source, nixpkgs_sha256: null },
        NOW,
      );
      assert.deepEqual(done!.nixpkgs, nixpkgs);
      assert.deepEqual((await storage.builds.findById(b.id))!.nixpkgs, nixpkgs);
      assert.deepEqual((await storage.builds.listForMachine(m.id, 10, 0)).items[0]!.nixpkgs, nixpkgs);
      const [line] = await storage.builds.recent(1, m.id);
      assert.deepEqual([line!.nixpkgs_revision, line!.nixpkgs_version], [nixpkgs.revision, nixpkgs.version]);

      const plain = await storage.builds.create({ machine_id: m.id, config: 'x', hostname: 'cfg-1', service_tag: 'CFG1', boot_token: 't', image_key: 'key-cfg2-aaaaaaaaaaaaa' }, NOW);
      assert.deepEqual(plain.config_files, { 'configuration.nix': 'x' }, 'without files, the entry text is the one file');
      const failed = await storage.builds.transition(plain.id, ['pending'], 'failed', { error: 'x' }, NOW);
      assert.equal(failed!.nixpkgs, null);
      await storage.machines.delete(m.id);
    });

    test('a transaction that throws writes nothing', async () => {
      await assert.rejects(
        storage.transaction(async (tx) => {
          await tx.machines.insertEnrolled(newMachine('ROLLBACK', '0c:c4:7a:00:00:0a'), NOW);
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
      const m = (await storage.machines.insertEnrolled(newMachine('QS1', '0c:c4:7a:00:00:31'), NOW))!;
      const n = (await storage.machines.insertEnrolled(newMachine('QS2', '0c:c4:7a:00:00:32'), NOW))!;
      const o = (await storage.machines.insertEnrolled(newMachine('QS3', '0c:c4:7a:00:00:33'), NOW))!;
      const before = await storage.builds.queueStats(NOW);
      const build = (machine: { id: number; service_tag: string }, at: string) =>
        storage.builds.create({ machine_id: machine.id, config: '{}', hostname: 'q', service_tag: machine.service_tag, boot_token: 't', image_key: `key-${machine.service_tag}` }, at);
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
      const m = (await storage.machines.insertEnrolled(newMachine('HOOK1', '0c:c4:7a:00:00:41'), NOW))!;
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
      assert.deepEqual((await storage.power.listWithBmc()).map((p) => [p.machine_id, p.service_tag]), [[m.id, m.service_tag]], 'with the machine\'s tag, for log lines');
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

    test('settings: absent until put, then replaced', async () => {
      assert.equal(await storage.settings.get('desired_hash_nixpkgs'), undefined);
      await storage.settings.put('desired_hash_nixpkgs', '"/srv/a"', NOW);
      await storage.settings.put('desired_hash_nixpkgs', '', NOW);
      assert.equal(await storage.settings.get('desired_hash_nixpkgs'), '', 'an empty value is a value');
    });

    test('builder presence: put replaces a builder\'s row, list is by name, prune removes the silent, remove its own', async () => {
      const at = (minutes: number) => new Date(Date.parse(NOW) + minutes * 60_000).toISOString();
      const row = (name: string, lastSeenAt: string, running = 0) => ({ name, startedAt: NOW, lastSeenAt, concurrency: 2, running, bootCheck: 'booted', secureBoot: null });
      assert.deepEqual(await storage.builderPresence.list(), []);
      await storage.builderPresence.put(row('b-2', at(0)));
      await storage.builderPresence.put({ ...row('b-1', at(0)), secureBoot: 'CN=Site db' });
      await storage.builderPresence.put(row('b-2', at(5), 1));
      assert.deepEqual(await storage.builderPresence.list(), [{ ...row('b-1', at(0)), secureBoot: 'CN=Site db' }, row('b-2', at(5), 1)]);
      assert.equal(await storage.builderPresence.prune(at(1)), 1);
      assert.deepEqual((await storage.builderPresence.list()).map((b) => b.name), ['b-2']);
      await storage.builderPresence.remove('b-2');
      await storage.builderPresence.remove('never-there');
      assert.deepEqual(await storage.builderPresence.list(), []);
    });

    test('setDesiredHashes writes only the hashes that differ, in one batch', async () => {
      const m = (await storage.machines.insertEnrolled(newMachine('DH1', '0c:c4:7a:00:20:01'), NOW))!;
      const n = (await storage.machines.insertEnrolled(newMachine('DH2', '0c:c4:7a:00:20:02'), NOW))!;
      const set = (hashes: Array<[number, string | null]>, at = NOW) => storage.machines.setDesiredHashes(hashes.map(([id, hash]) => ({ id, hash })), at);
      // Neither has been built: a machine with a desired hash is out of date, one without is not.
      const outOfDate = async () => (await storage.machines.list({ limit: 10, offset: 0, search: 'dh', outOfDate: true })).items.map((x) => x.service_tag);
      assert.equal(await set([]), 0, 'nothing to write');
      assert.equal(await set([[m.id, null], [n.id, null]]), 0, 'already null');
      assert.equal(await set([[m.id, 'h1'], [n.id, null]]), 1);
      assert.deepEqual(await outOfDate(), ['DH1']);
      assert.equal(await set([[m.id, 'h1'], [n.id, 'h1']], LATER), 1, 'only the one that differs');
      assert.equal((await storage.machines.findById(m.id))!.updated_at, NOW, 'an unchanged machine keeps its updated_at');
      assert.equal((await storage.machines.findById(n.id))!.updated_at, LATER);
      assert.equal(await set([[m.id, 'h2'], [n.id, null]]), 2);
      assert.equal(await set([[m.id, 'h2'], [n.id, null]]), 0, 'what was written is what was asked for');
      assert.deepEqual(await outOfDate(), ['DH1']);
      assert.equal(await set([[987654, 'h1']]), 0, 'no such machine');
      // A hash is text whatever it holds: quotes and parentheses are values, not SQL.
      assert.equal(await set([[m.id, "x'), (1, 'y"]]), 1);
      assert.equal(await set([[m.id, "x'), (1, 'y"]]), 0);
      // More ids than one statement takes: the two machines last, after 1,200 that do not exist.
      const many: Array<[number, string | null]> = Array.from({ length: 1200 }, (_, i) => [900_000 + i, 'h3']);
      assert.equal(await set([...many, [m.id, 'h3'], [n.id, 'h3']]), 2);
      assert.equal(await set([[m.id, 'h3'], [n.id, 'h3']]), 0);
    });

    test('scan walks the machines meeting its conditions by id, a page after another', async () => {
      const made = [];
      for (let i = 1; i <= 5; i++) made.push((await storage.machines.insertEnrolled(newMachine(`SC${i}`, `0c:c4:7a:00:30:0${i}`), NOW))!);
      for (const m of made.filter((_, i) => i % 2 === 0)) await storage.machines.update(m.id, { labels: { scan: 'odd' } }, NOW);
      const odd = parseSelector('scan=odd');
      const walk = async (limit: number) => {
        const tags: string[][] = [];
        for (let afterId = 0; ; ) {
          const page = await storage.machines.scan({ selector: odd }, afterId, limit);
          if (page.length === 0) return tags;
          tags.push(page.map((m) => m.service_tag));
          afterId = page[page.length - 1]!.id;
        }
      };
      assert.deepEqual(await walk(2), [['SC1', 'SC3'], ['SC5']]);
      assert.deepEqual(await walk(10), [['SC1', 'SC3', 'SC5']]);
      assert.deepEqual(
        (await storage.machines.scan({ search: 'sc' }, made[1]!.id, 2)).map((m) => m.service_tag),
        ['SC3', 'SC4'],
        'after an id, in id order, at most the limit',
      );
      assert.deepEqual(await storage.machines.scan({ selector: odd, status: 'ready' }, 0, 10), [], 'every condition holds');
      const whole = (await storage.machines.scan({}, made[4]!.id - 1, 1))[0]!;
      assert.deepEqual(whole, await storage.machines.findById(made[4]!.id), 'whole machines, as findById reads them');
      for (const m of made) await storage.machines.delete(m.id);
    });

    test('profiles: insert once by name, change, count their machines and those out of date, delete', async () => {
      const fields = { description: 'web servers', nixos_config: '{ ... }: { }', hostname_pattern: 'web-{n:03}', kernel_params: ['console=ttyS1,115200'], auto_build: true, health_check: null, skip_boot_check: false };
      const web = await storage.profiles.insert('web', fields, NOW);
      assert.deepEqual([web.name, web.kernel_params, web.auto_build, web.hostname_pattern], ['web', ['console=ttyS1,115200'], true, 'web-{n:03}']);
      await assert.rejects(storage.profiles.insert('web', fields, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      await storage.profiles.insert('db', { ...fields, hostname_pattern: null, kernel_params: [], auto_build: false }, NOW);
      const changed = await storage.profiles.update('web', { auto_build: false, kernel_params: [], health_check: 'curl -sf http://localhost/ok' }, '2026-01-03T00:00:00.000Z');
      assert.deepEqual(
        [changed?.auto_build, changed?.kernel_params, changed?.description, changed?.health_check, changed?.updated_at],
        [false, [], 'web servers', 'curl -sf http://localhost/ok', '2026-01-03T00:00:00.000Z'],
      );
      assert.equal((await storage.profiles.update('web', { health_check: null }, NOW))?.health_check, null, 'a health check is removed with null');
      assert.equal((await storage.profiles.findByName('db'))?.health_check, null);
      assert.equal((await storage.profiles.update('db', { skip_boot_check: true }, NOW))?.skip_boot_check, true, 'skipping the boot check is kept');
      assert.equal((await storage.profiles.findByName('web'))?.skip_boot_check, false);
      assert.equal(await storage.profiles.update('nope', { auto_build: true }, NOW), undefined);
      const a = (await storage.machines.insertEnrolled(newMachine('FL1', '0c:c4:7a:00:10:01'), NOW))!;
      const b = (await storage.machines.insertEnrolled(newMachine('FL2', '0c:c4:7a:00:10:02'), NOW))!;
      await storage.machines.update(a.id, { profile: 'web', desired_hash: 'h1' }, NOW);
      await storage.machines.update(b.id, { profile: 'web', desired_hash: null }, NOW);
      assert.deepEqual(
        (await storage.profiles.list()).map((p) => [p.name, p.machines, p.out_of_date]),
        [['db', 0, 0], ['web', 2, 1]],
      );
      assert.equal(await storage.profiles.usageCount('web'), 2);
      assert.deepEqual((await storage.machines.list({ profile: 'web', limit: 10, offset: 0 })).items.map((m) => m.service_tag), ['FL1', 'FL2']);
      assert.deepEqual((await storage.machines.list({ profile: 'web', outOfDate: true, limit: 10, offset: 0 })).items.map((m) => m.service_tag), ['FL1']);
      assert.deepEqual((await storage.machines.list({ profile: 'web', outOfDate: false, limit: 10, offset: 0 })).items.map((m) => m.service_tag), ['FL2']);
      assert.equal(await storage.profiles.delete('db'), true);
      assert.equal(await storage.profiles.delete('db'), false);
      await assert.rejects(storage.profiles.delete('web'), (err: unknown) => err instanceof StillReferencedError, 'a profile a machine uses cannot go (foreign key)');
    });

    test('imageBuildIds reads what many machines boot at once, past a batch of ids', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 1003; i++) {
        const mac = `0e:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
        ids.push((await storage.machines.insertEnrolled(newMachine(`IB${i}`, mac), NOW))!.id);
      }
      const build = await storage.builds.create(
        { machine_id: ids[0]!, config: '{}', hostname: 'ib-0', service_tag: 'IB0', boot_token: 't', image_key: 'key-ib-aaaaaaaaaaaaaaa', config_hash: 'h' },
        NOW,
      );
      const booting = [ids[0]!, ids[499]!, ids[500]!, ids[1002]!];
      for (const id of booting) await storage.machines.update(id, { image_build_id: build.id }, NOW);
      const found = await storage.machines.imageBuildIds([...ids, 987_654_321]);
      assert.equal(found.size, ids.length, 'every machine, and nothing for an id of none');
      for (const id of ids) assert.equal(found.get(id), booting.includes(id) ? build.id : null, `machine ${id}`);
      assert.deepEqual(await storage.machines.imageBuildIds([]), new Map());
      for (const id of ids) await storage.machines.delete(id);
    });

    test('what a machine boots was built from its image build\'s hash: out_of_date follows desired vs built', async () => {
      const a = (await storage.machines.findByServiceTag('FL1'))!;
      const build = await storage.builds.create(
        { machine_id: a.id, config: '{}', hostname: 'web-001', service_tag: 'FL1', boot_token: 't', image_key: 'key-fleet-aaaaaaaaaaaa', profile_name: 'web', profile_config: '{ ... }: { }', kernel_params: ['nomodeset'], health_check: 'true', config_hash: 'h1' },
        NOW,
      );
      assert.deepEqual([build.profile, build.config_hash, build.health_check], ['web', 'h1', 'true']);
      assert.equal((await storage.builds.findById(build.id))!.health_check, 'true', 'the health check is snapshotted on the build');
      const record = (await storage.builds.findRecord(build.id))!;
      assert.deepEqual([record.profile_config, record.kernel_params], ['{ ... }: { }', ['nomodeset']]);
      assert.equal((await storage.machines.findById(a.id))!.out_of_date, true, 'no image yet');
      await storage.builds.transition(build.id, ['pending'], 'success', {}, NOW);
      assert.equal((await storage.machines.update(a.id, { image_build_id: build.id }, NOW)).out_of_date, false, 'built from what is desired');
      assert.equal((await storage.machines.update(a.id, { desired_hash: 'h2' }, NOW)).out_of_date, true, 'the desired configuration moved on');
      assert.equal((await storage.machines.update(a.id, { image_build_id: null, desired_hash: null }, NOW)).out_of_date, false, 'nothing to build');
      const health = { ok: false, exit_code: 3, output: 'nginx: inactive "x"\n' };
      assert.deepEqual((await storage.machines.update(a.id, { booted_build_id: build.id, booted_at: NOW, booted_health: health }, NOW)).booted_health, health);
      assert.deepEqual((await storage.machines.findById(a.id))!.booted_health, health, 'the health sent with the booted report is kept');
      assert.equal((await storage.machines.update(a.id, { booted_health: null }, NOW)).booted_health, undefined, 'a report without one clears it');
    });

    test('hostnames are unique: claimHostname refuses a taken name, inside a transaction too; hostnamesLike finds a pattern\'s names', async () => {
      const a = (await storage.machines.findByServiceTag('FL1'))!;
      const b = (await storage.machines.findByServiceTag('FL2'))!;
      assert.equal(await storage.machines.claimHostname(a.id, 'web-001', NOW), true);
      assert.equal(await storage.machines.claimHostname(b.id, 'web-001', NOW), false);
      await assert.rejects(storage.machines.update(b.id, { hostname: 'web-001' }, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      const named = await storage.transaction(async (tx) => {
        assert.equal(await tx.machines.claimHostname(b.id, 'web-001', NOW), false, 'refused');
        assert.equal(await tx.machines.claimHostname(b.id, 'web-002', NOW), true, 'and the transaction goes on');
        return (await tx.machines.findById(b.id))!.hostname;
      });
      assert.equal(named, 'web-002');
      assert.equal((await storage.machines.findById(b.id))!.hostname, 'web-002');
      assert.deepEqual((await storage.machines.hostnamesLike('web-', '')).sort(), ['web-001', 'web-002']);
      assert.deepEqual(await storage.machines.hostnamesLike('web-0', '1'), ['web-001']);
      assert.deepEqual(await storage.machines.hostnamesLike('mail-', ''), []);
      for (const m of [a, b]) await storage.machines.update(m.id, { hostname: null, profile: null }, NOW);
    });

    test('rules: in order of priority then id, unique names, count those setting a profile', async () => {
      const base = { match: { manufacturer: 'Dell*' }, set: { profile: 'web', labels: { role: 'web' } }, build: true, enabled: true };
      const late = await storage.rules.insert({ ...base, name: 'late', priority: 200 }, NOW);
      const early = await storage.rules.insert({ ...base, name: 'early', priority: 10 }, NOW);
      const tie = await storage.rules.insert({ ...base, name: 'tie', priority: 10, set: { labels: { role: 'db' } } }, NOW);
      await assert.rejects(storage.rules.insert({ ...base, name: 'late', priority: 1 }, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      assert.deepEqual((await storage.rules.list()).map((r) => r.name), ['early', 'tie', 'late']);
      assert.deepEqual((await storage.rules.findById(early.id))?.match, { manufacturer: 'Dell*' });
      assert.equal(await storage.rules.countUsingProfile('web'), 2);
      const moved = await storage.rules.update(tie.id, { ...base, name: 'tie', priority: 300, enabled: false }, '2026-01-03T00:00:00.000Z');
      assert.deepEqual([moved?.priority, moved?.enabled, moved?.set.profile], [300, false, 'web']);
      await assert.rejects(storage.rules.update(tie.id, { ...base, name: 'late', priority: 1 }, NOW), (err: unknown) => err instanceof DuplicateKeyError);
      assert.equal(await storage.rules.countUsingProfile('web'), 3);
      assert.equal(await storage.rules.delete(late.id), true);
      assert.equal(await storage.rules.delete(late.id), false);
      assert.deepEqual((await storage.rules.list()).map((r) => r.name), ['early', 'tie']);
      for (const r of await storage.rules.list()) await storage.rules.delete(r.id);
    });

    test('held builds, published images, retention marks and who points at a build', async () => {
      const m = (await storage.machines.insertEnrolled(newMachine('RET1', '0c:c4:7a:00:01:01'), NOW))!;
      const other = (await storage.machines.insertEnrolled(newMachine('RET2', '0c:c4:7a:00:01:02'), NOW))!;
      const b = (machineId: number, tag: string, key: string, hold = false) =>
        storage.builds.create({ machine_id: machineId, config: '{}', hostname: 'h', service_tag: tag, boot_token: 't', image_key: key, hold, rollout_id: null }, NOW);
      const ids: number[] = [];
      for (const key of ['ret-a-aaaaaaaaaaaaaaaaa', 'ret-b-aaaaaaaaaaaaaaaaa', 'ret-c-aaaaaaaaaaaaaaaaa']) {
        const build = await b(m.id, 'RET1', key, key.startsWith('ret-c'));
        await storage.builds.transition(build.id, ['pending'], 'success', {}, NOW);
        ids.push(build.id);
      }
      const failed = await b(other.id, 'RET2', 'ret-d-aaaaaaaaaaaaaaaaa');
      await storage.builds.transition(failed.id, ['pending'], 'failed', {}, NOW);
      const held = (await storage.builds.findById(ids[2]!))!;
      assert.equal(held.hold, true);
      assert.equal(held.image_swept_at, null);
      assert.equal((await storage.builds.findById(ids[0]!))!.hold, false);
      const published = (await storage.builds.publishedImages()).filter((p) => p.machine_id === m.id || p.machine_id === other.id);
      assert.deepEqual(published, [...ids].reverse().map((id) => ({ id, machine_id: m.id })), 'newest first, successful only');
      assert.equal(await storage.builds.markImageSwept(ids[0]!, NOW), true);
      assert.equal(await storage.builds.markImageSwept(ids[0]!, NOW), false, 'once');
      assert.equal(await storage.builds.markImageSwept(failed.id, NOW), false, 'only successful builds');
      assert.deepEqual(await storage.builds.sweptAmong([...ids, failed.id, 987654]), [ids[0]!], 'which of these are marked swept');
      assert.deepEqual(await storage.builds.sweptAmong([]), []);
      assert.equal((await storage.builds.findById(ids[0]!))!.image_swept_at, NOW);
      assert.ok(!(await storage.builds.publishedImages()).some((p) => p.id === ids[0]));
      await storage.machines.update(m.id, { image_build_id: ids[1]! }, NOW);
      assert.deepEqual(await storage.machines.pointingAt(ids[1]!), [m.id]);
      assert.deepEqual(await storage.machines.pointingAt(ids[2]!), []);
      assert.deepEqual((await storage.builds.statusesOf([ids[0]!, failed.id, 999999])).sort((x, y) => x.id - y.id), [
        { id: ids[0]!, status: 'success' },
        { id: failed.id, status: 'failed' },
      ]);
      assert.equal(await storage.builds.bootMarker(ids[1]!), null);
      assert.equal(await storage.builds.advanceBootMarker(ids[1]!, '000000000000001.abc'), true);
      assert.equal(await storage.builds.bootMarker(ids[1]!), '000000000000001.abc');
      assert.equal(await storage.machines.rebootRequestedAt(m.id), null);
      await storage.machines.update(m.id, { reboot_requested_at: NOW }, NOW);
      assert.equal(await storage.machines.rebootRequestedAt(m.id), NOW);
    });

    test('rollouts: machines locked while active, a second over the same machine refused, leases', async () => {
      const a = (await storage.machines.findByServiceTag('RET1'))!;
      const b = (await storage.machines.findByServiceTag('RET2'))!;
      const settings = { selector: 'role=web', build: 'missing' as const, canary: 1, batch_size: 5, max_unavailable: 0, max_failures: 0, health_timeout_seconds: 600, reboot: 'none' as const };
      const machine = (id: number, tag: string, wave: number) => ({ machine_id: id, service_tag: tag, wave, from_build_id: null, to_build_id: null, state: 'building' as const });
      const first = await storage.rollouts.create({ ...settings, state: 'building', waves: 2, created_by: 'user:alice', machines: [machine(b.id, 'RET2', 2), machine(a.id, 'RET1', 1)] }, NOW);
      assert.equal(first.state, 'building');
      assert.equal(first.build, 'missing');
      assert.equal(first.waves, 2);
      assert.equal(first.wave, 0);
      assert.deepEqual(first.machines.map((m) => [m.service_tag, m.wave, m.state]), [['RET1', 1, 'building'], ['RET2', 2, 'building']]);
      assert.deepEqual(await storage.rollouts.activeFor([b.id, 424242]), [{ rollout_id: first.id, machine_id: b.id }]);
      await assert.rejects(
        storage.transaction((tx) => tx.rollouts.create({ ...settings, state: 'building', waves: 1, created_by: 'user:bob', machines: [machine(b.id, 'RET2', 1)] }, NOW)),
        (err: unknown) => err instanceof DuplicateKeyError,
      );
      assert.equal((await storage.rollouts.list(50, 0)).total, 1, 'the refused rollout wrote nothing');
      await storage.rollouts.updateMachine(first.id, { ...first.machines[0]!, to_build_id: 77, state: 'built', updated_at: NOW });
      assert.deepEqual(await storage.rollouts.activeBuildIds(), [77]);
      const owned = await storage.rollouts.claimLeases('engine-a', '2026-01-02T03:05:05.000Z', NOW);
      assert.deepEqual(owned, [first.id]);
      assert.deepEqual(await storage.rollouts.claimLeases('engine-b', '2026-01-02T03:05:05.000Z', NOW), [], 'held by engine-a');
      assert.deepEqual(await storage.rollouts.claimLeases('engine-b', '2026-01-02T03:07:00.000Z', '2026-01-02T03:06:00.000Z'), [first.id], 'expired');
      await storage.rollouts.releaseLeases('engine-b');
      assert.deepEqual(await storage.rollouts.claimLeases('engine-a', '2026-01-02T03:05:05.000Z', NOW), [first.id], 'released');
      assert.equal(await storage.rollouts.update(first.id, first.version + 1, { state: 'failed' }, NOW), false, 'a stale version writes nothing');
      assert.equal(await storage.rollouts.update(first.id, first.version, { state: 'succeeded', wave: 2, finished_at: NOW, message: 'done' }, NOW), true);
      const done = (await storage.rollouts.get(first.id))!;
      assert.equal(done.state, 'succeeded');
      assert.equal(done.message, 'done');
      assert.equal(done.version, first.version + 1);
      assert.equal(done.machines[0]!.to_build_id, 77);
      assert.deepEqual(await storage.rollouts.activeFor([a.id, b.id]), [], 'a finished rollout holds no machine');
      assert.deepEqual(await storage.rollouts.activeBuildIds(), []);
      assert.deepEqual(await storage.rollouts.claimLeases('engine-c', '2026-01-02T03:05:05.000Z', NOW), [], 'finished rollouts are not driven');
      const second = await storage.rollouts.create({ ...settings, state: 'building', waves: 1, created_by: 'user:bob', machines: [machine(b.id, 'RET2', 1)] }, NOW);
      assert.deepEqual((await storage.rollouts.list(1, 0)).items.map((r) => r.id), [second.id], 'newest first');
    });

    test('deleting a machine deletes its builds and its power record', async () => {
      const m = (await storage.machines.findByServiceTag('SM1'))!;
      await storage.machines.delete(m.id);
      assert.equal((await storage.builds.listForMachine(m.id, 50, 0)).total, 0);
      assert.equal(await storage.power.get(m.id), undefined);
    });

    test('rate limits: a token bucket per key, refilled evenly, refunded, reset and swept', async () => {
      const t0 = Date.parse(NOW);
      const take = (key: string, at: number, bucket = 'enroll') => storage.rateLimits.take(bucket, key, 3, 60, at);
      for (let i = 0; i < 3; i++) assert.deepEqual(await take('10.0.0.1', t0), { allowed: true });
      assert.deepEqual(await take('10.0.0.1', t0), { allowed: false, retryAfterMs: 20_000 }, 'one attempt back every 20 s');
      assert.deepEqual(await take('10.0.0.1', t0 + 15_000), { allowed: false, retryAfterMs: 5_000 }, 'a refused take costs nothing');
      assert.deepEqual(await take('10.0.0.1', t0 + 20_000), { allowed: true });
      assert.deepEqual(await take('10.0.0.2', t0), { allowed: true }, 'another key has its own bucket');
      assert.deepEqual(await take('10.0.0.1', t0 + 20_000, 'login'), { allowed: true }, 'another bucket too');
      assert.deepEqual(await take('10.0.0.1', t0 - 60_000), { allowed: false, retryAfterMs: 20_000 }, 'a clock behind refills nothing');

      await storage.rateLimits.refund('enroll', '10.0.0.1', 3);
      assert.deepEqual(await take('10.0.0.1', t0 + 20_000), { allowed: true }, 'a refunded attempt can be taken again');
      await storage.rateLimits.reset('enroll', '10.0.0.1');
      for (let i = 0; i < 3; i++) assert.deepEqual(await take('10.0.0.1', t0 + 20_000), { allowed: true }, 'a reset bucket starts full');

      const long = `${'x'.repeat(10_000)} alice`;
      assert.deepEqual(await storage.rateLimits.take('login', long, 1, 900, t0), { allowed: true });
      assert.equal((await storage.rateLimits.take('login', long, 1, 900, t0)).allowed, false, 'a long key is a key like any other');

      assert.equal(await storage.rateLimits.sweep(t0 + 1), 0, 'nothing is full again yet');
      // A flood of distinct keys leaves one row each, and each goes once its bucket is full again.
      for (let i = 0; i < 200; i++) await take(`192.0.2.${i}`, t0);
      assert.equal(await storage.rateLimits.sweep(t0 + 20_000), 201, 'keys that took one attempt are full again after 20 s');
      assert.equal(await storage.rateLimits.sweep(t0 + 900_000), 3, 'and every other bucket after its window');
      assert.deepEqual(await take('10.0.0.1', t0 + 900_000), { allowed: true });
    });

    test('rate limits: parallel takes from two handles on one database pass exactly the capacity', async () => {
      const second = await another();
      try {
        const now = Date.parse(NOW);
        const takes = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? storage : second.storage).rateLimits.take('login', 'race', 10, 900, now));
        const results = await Promise.all(takes);
        assert.equal(results.filter((r) => r.allowed).length, 10);
        assert.ok(results.every((r) => r.allowed || r.retryAfterMs === 90_000), JSON.stringify(results.find((r) => !r.allowed)));
      } finally {
        await second.close();
      }
    });
  });
}
