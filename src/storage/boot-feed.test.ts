import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { MachinePatch } from '../core/ports.ts';
import { createLogger } from '../core/logger.ts';
import { BOOT_FEED_MACHINE_COLUMNS, SqlBootFeed } from './boot-feed.ts';
import { migrate, openDatabase, type Database } from './database.ts';
import { SqlStorage } from './storage.ts';
import { TEST_POSTGRES_URL, testDatabaseKinds, type TestDatabase } from '../../test/support/databases.ts';
import { pollUntil } from '../../test/support/poll.ts';

const NOW = '2026-01-02T03:04:05.000Z';
const LATER = '2026-01-02T03:05:00.000Z';
const logger = createLogger('silent');

/**
 * The writes that change what a boot decision reads, one per column the feed reads from `machines`
 * (the migration 0019 trigger's list); each must give the machine a new version. `mac` is the
 * machine's own MAC, `build` a build of it.
 */
const BOOT_CHANGES: Record<string, (m: { mac: string; build: number }) => MachinePatch> = {
  // The store never renames a machine; the trigger still treats it as the key it is.
  service_tag: () => ({ service_tag: 'RENAMED' }) as MachinePatch,
  identity_mac: () => ({ identity_mac: '52:54:00:aa:bb:cc' }),
  system_uuid: () => ({ system_uuid: '4c4c4544-0042-3510-8052-b3c04f4e9999' }),
  identity_conflict: ({ mac }) => ({ identity_conflict: { mac_address: mac, system_uuid: null, held_by: ['OTHER'], claimed_at: NOW, address: null } }),
  status: () => ({ status: 'ready' }),
  image_build_id: ({ build }) => ({ image_build_id: build }),
};

/** Writes that change nothing the feed reads: no new version, no notification. */
const OTHER_WRITES: Record<string, MachinePatch> = {
  hostname: { hostname: 'web-01' },
  labels: { labels: { rack: 'r12' } },
  description: { description: 'the one by the door' },
  desired_hash: { desired_hash: 'a'.repeat(64) },
  reboot_requested_at: { reboot_requested_at: LATER },
};

test('every column the feed reads has a change below, so the trigger is tested on each', () => {
  assert.deepEqual(Object.keys(BOOT_CHANGES).sort(), [...BOOT_FEED_MACHINE_COLUMNS].sort(), 'a column the feed reads needs a migration adding it to the trigger, and a case here');
});

for (const kind of await testDatabaseKinds()) {
  describe(`boot change feed on ${kind.name}`, () => {
    let testDb: TestDatabase;
    let database: Database;
    let storage: SqlStorage;
    let feed: SqlBootFeed;

    before(async () => {
      testDb = kind.fresh();
      database = await openDatabase(testDb.url);
      await migrate(database);
      storage = new SqlStorage(database);
      feed = new SqlBootFeed(database, testDb.url, logger);
    });
    after(async () => {
      await database.close();
      await testDb.cleanup();
    });

    /** The feed's cursor now: the highest version it holds. */
    const cursorNow = async () => Math.max(0, ...(await feed.changes()).rows.map((r) => r.version));
    let n = 0;
    /** A new machine and a build of it, and the feed's cursor after both. */
    const fresh = async () => {
      n++;
      const mac = `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;
      const tag = `FEED${n}`;
      const machine = (await storage.machines.insertEnrolled(
        { service_tag: tag, mac_address: mac, hardware: {}, identity_mac: mac, system_uuid: null, identity_conflict: null },
        NOW,
      ))!;
      const token = `t${n}`;
      const imageKey = `key-${n}`.padEnd(22, 'x');
      const build = await storage.builds.create({ machine_id: machine.id, config: '{}', hostname: 'h', service_tag: tag, boot_token: token, image_key: imageKey }, NOW);
      return { machine, build: build.id, token, imageKey, mac, cursor: await cursorNow() };
    };
    const changedSince = async (cursor: number) => (await feed.changes(cursor)).rows.map((r) => r.id);

    test('a new machine is in the feed with what its boot decision reads', async () => {
      const cursor = await cursorNow();
      const { machine, mac } = await fresh();
      const rows = (await feed.changes(cursor)).rows;
      assert.deepEqual(
        rows.map((r) => ({ ...r, version: r.version > cursor })),
        [{ id: machine.id, serviceTag: machine.service_tag, macAddress: mac, systemUuid: null, identityConflict: false, status: machine.status, imageBuildId: null, bootToken: null, imageKey: null, version: true }],
      );
    });

    for (const [column, patch] of Object.entries(BOOT_CHANGES)) {
      test(`a change of ${column} is a change of the feed`, async () => {
        const { machine, build, mac, cursor } = await fresh();
        await storage.machines.update(machine.id, patch({ mac, build }), LATER);
        assert.deepEqual(await changedSince(cursor), [machine.id]);
      });
    }

    test('a published build brings its boot token and image key', async () => {
      const { machine, build, token, imageKey, cursor } = await fresh();
      await storage.machines.update(machine.id, { image_build_id: build }, LATER);
      const [row] = (await feed.changes(cursor)).rows;
      assert.deepEqual([row?.imageBuildId, row?.bootToken, row?.imageKey], [build, token, imageKey]);
    });

    test('writes that change nothing a boot decision reads are not changes', async () => {
      const { machine, cursor } = await fresh();
      for (const patch of Object.values(OTHER_WRITES)) await storage.machines.update(machine.id, patch, LATER);
      await storage.machines.refreshHardware(machine.id, { manufacturer: 'Dell', model: 'R650' }, LATER);
      await storage.machines.setDesiredHashes([{ id: machine.id, hash: 'b'.repeat(64) }], LATER);
      await storage.machines.touchLastSeen([machine.id], LATER);
      assert.deepEqual(await changedSince(cursor), []);
      const stored = (await storage.machines.findById(machine.id))!;
      assert.equal(stored.hostname, 'web-01', 'the writes themselves were stored');
      assert.equal(stored.labels.rack, 'r12');
    });

    test('a write that sets a boot column to the value it has is not a change', async () => {
      const { machine, cursor } = await fresh();
      await storage.machines.update(machine.id, { status: machine.status }, LATER);
      assert.deepEqual(await changedSince(cursor), []);
    });

    test('a deleted machine leaves a tombstone after the cursor', async () => {
      const { machine, cursor } = await fresh();
      await storage.machines.delete(machine.id);
      const changes = await feed.changes(cursor);
      assert.deepEqual(changes.rows, []);
      assert.deepEqual(
        changes.deleted.map((d) => [d.id, d.version > cursor]),
        [[machine.id, true]],
      );
    });

    test('another process watching hears of a change', { timeout: 20_000 }, async () => {
      const { machine } = await fresh();
      const other = await openDatabase(testDb.url);
      let heard = 0;
      const stop = await new SqlBootFeed(other, testDb.url, logger).watch(() => heard++);
      try {
        await storage.machines.update(machine.id, { status: 'ready' }, LATER);
        await pollUntil('the watcher hears the status change', () => heard > 0, { timeoutMs: 10_000 });
      } finally {
        await stop();
        await other.close();
      }
    });

    if (kind.name === 'postgres') {
      test('a LISTEN connection the server ends is replaced, and changes are heard over the new one', { timeout: 30_000 }, async () => {
        const { machine } = await fresh();
        const schema = new URL(testDb.url).searchParams.get('schema');
        const name = `metal change feed ${schema}`;
        const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
        await admin.connect();
        let heard = 0;
        const stop = await feed.watch(() => heard++);
        try {
          const backends = async () =>
            (await admin.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1 order by pid', [name])).rows.map((r) => r.pid);
          const [first] = await backends();
          assert.ok(first, `the feed's connection is named "${name}" in pg_stat_activity`);
          await admin.query('select pg_terminate_backend($1)', [first]);
          const second = await pollUntil(
            'a new LISTEN connection',
            async () => {
              const now = await backends();
              return now.length === 1 && now[0] !== first && now[0];
            },
            { timeoutMs: 15_000, intervalMs: 100, state: backends },
          );
          // The new connection listens once it says so (a catch-up is signalled then); a change after that is heard over it.
          await pollUntil('the new connection listens', async () => (await admin.query(`select 1 from pg_stat_activity where pid = $1 and query like 'LISTEN %'`, [second])).rowCount === 1, {
            timeoutMs: 10_000,
          });
          const before = heard;
          await storage.machines.update(machine.id, { status: 'ready' }, LATER);
          await pollUntil('the change, heard over the new connection', () => heard > before, { timeoutMs: 10_000 });
        } finally {
          await stop();
          await admin.end();
        }
      });

      test('PostgreSQL announces a boot change and stays quiet about a hostname edit', { timeout: 20_000 }, async () => {
        const { machine } = await fresh();
        const schema = new URL(testDb.url).searchParams.get('schema');
        const listener = new pg.Client({ connectionString: TEST_POSTGRES_URL });
        const heard: string[] = [];
        // The channel is shared by every schema of the database (other suites write theirs at the same time): only this one's and the markers count.
        listener.on('notification', (msg) => {
          if (msg.payload === schema || msg.payload?.startsWith(`${schema}:`)) heard.push(msg.payload);
        });
        await listener.connect();
        try {
          await listener.query('LISTEN metal_changes');
          // Notifications arrive in commit order: once a marker sent after a write is heard, whatever
          // the write announced has been heard too.
          const afterMarker = async (name: string) => {
            const marker = `${schema}:${name}`;
            await sql`select pg_notify('metal_changes', ${marker})`.execute(database.db);
            await pollUntil(`the marker ${marker}`, () => heard.includes(marker), { timeoutMs: 10_000 });
            return heard.splice(0).filter((p) => p !== marker);
          };
          await storage.machines.update(machine.id, { hostname: 'quiet-01', labels: { rack: 'r1' } }, LATER);
          assert.deepEqual(await afterMarker('m1'), [], 'a hostname and labels edit announces nothing');
          await storage.machines.update(machine.id, { status: 'ready' }, LATER);
          assert.deepEqual(await afterMarker('m2'), [schema], 'a status change is announced for this schema');
        } finally {
          await listener.end();
        }
      });
    }
  });
}
