import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import { Notifier } from '../core/notifier.ts';
import type { BootChanges, BootFeed, BootRow, BootTarget } from '../core/ports.ts';
import { BootTable } from './boot-table.ts';

/** A change feed in memory: rows with versions, tombstones, and a hand-driven signal. */
class FakeFeed implements BootFeed {
  rows = new Map<number, BootRow>();
  tombstones: Array<{ id: number; version: number }> = [];
  reads = 0;
  signal: (() => void) | undefined;

  put(row: Partial<BootRow> & { id: number; version: number }): void {
    this.rows.set(row.id, { serviceTag: `M${row.id}`, macAddress: `52:54:00:00:00:0${row.id}`, systemUuid: null, identityConflict: false, status: 'enrolled', imageBuildId: null, bootToken: null, imageKey: null, ...row });
  }

  async changes(since?: number): Promise<BootChanges> {
    this.reads += 1;
    const after = since ?? -1;
    return {
      rows: [...this.rows.values()].filter((r) => r.version > after).map((r) => ({ ...r })),
      deleted: since === undefined ? [] : this.tombstones.filter((t) => t.version > after),
    };
  }

  async watch(onChange: () => void) {
    this.signal = onChange;
    return async () => {
      this.signal = undefined;
    };
  }
}

async function tableOn(feed: FakeFeed, lagMs = 0) {
  const notifier = new Notifier();
  const table = new BootTable(feed, notifier, createLogger('silent'), { lagMs, pollMs: 3_600_000 });
  await table.start();
  return { table, notifier };
}

describe('boot decision table in memory', () => {
  test('loads every machine and finds them by tag, MAC and UUID (lowest id first)', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1, macAddress: '52:54:00:aa:aa:aa', systemUuid: 'u-1' });
    feed.put({ id: 2, version: 2, macAddress: '52:54:00:aa:aa:aa' });
    const { table } = await tableOn(feed);
    assert.equal(table.size, 2);
    assert.equal((await table.findMachine('service_tag', 'M2'))?.id, 2);
    assert.equal((await table.findMachine('mac_address', '52:54:00:aa:aa:aa'))?.id, 1);
    assert.equal((await table.findMachine('system_uuid', 'u-1'))?.id, 1);
    assert.equal(await table.findMachine('service_tag', 'NONE'), undefined);
    await table.close();
  });

  test('a signal from another process brings in changes, deletions and published builds', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1 });
    feed.put({ id: 2, version: 2 });
    const { table } = await tableOn(feed);
    feed.put({ id: 1, version: 3, status: 'ready', imageBuildId: 9, bootToken: 'tok', imageKey: 'key9' });
    feed.rows.delete(2);
    feed.tombstones.push({ id: 2, version: 4 });
    feed.signal!();
    await table.refresh();
    assert.deepEqual(await table.findMachine('service_tag', 'M1'), { id: 1, serviceTag: 'M1', status: 'ready', imageBuildId: 9, systemUuid: null, identityConflict: false });
    assert.deepEqual(await table.buildFacts(9), { machineId: 1, bootToken: 'tok', imageKey: 'key9' });
    assert.equal(await table.buildIdOfImageKey('key9'), 9);
    assert.equal(await table.findMachine('service_tag', 'M2'), undefined);
    assert.equal(await table.findMachine('mac_address', '52:54:00:00:00:02'), undefined, 'indexes follow the deletion');
    await table.close();
  });

  test('a change made in this process is served at once: the next lookup waits for the catch-up', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1 });
    const { table, notifier } = await tableOn(feed);
    feed.put({ id: 1, version: 2, status: 'building' });
    notifier.emit('machine.updated', 1);
    assert.equal((await table.findMachine('service_tag', 'M1'))?.status, 'building');
    await table.close();
  });

  test('a renamed key moves: the old MAC no longer finds the machine', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1, macAddress: '52:54:00:00:00:aa' });
    const { table } = await tableOn(feed);
    feed.put({ id: 1, version: 2, macAddress: '52:54:00:00:00:bb' });
    await table.refresh();
    assert.equal(await table.findMachine('mac_address', '52:54:00:00:00:aa'), undefined);
    assert.equal((await table.findMachine('mac_address', '52:54:00:00:00:bb'))?.id, 1);
    await table.close();
  });

  test('with a lag, a version that commits after a higher one is still read', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1 });
    const { table } = await tableOn(feed, 60_000);
    feed.put({ id: 2, version: 5 });
    await table.refresh();
    feed.put({ id: 3, version: 4 }); // took its version before 5, committed after it
    await table.refresh();
    assert.equal((await table.findMachine('service_tag', 'M3'))?.id, 3);
    await table.close();
  });

  test('without a lag (in-order feeds) a catch-up reads only what is new', async () => {
    const feed = new FakeFeed();
    for (let id = 1; id <= 50; id++) feed.put({ id, version: id });
    const { table } = await tableOn(feed);
    let served = 0;
    const original = feed.changes.bind(feed);
    feed.changes = async (since) => {
      const c = await original(since);
      served += c.rows.length;
      return c;
    };
    feed.put({ id: 7, version: 51, status: 'ready' });
    await table.refresh();
    assert.equal(served, 1);
    await table.close();
  });

  test('a failing feed keeps serving what is known', async () => {
    const feed = new FakeFeed();
    feed.put({ id: 1, version: 1 });
    const { table } = await tableOn(feed);
    feed.changes = async () => {
      throw new Error('database unreachable');
    };
    await table.refresh();
    assert.equal((await table.findMachine('service_tag', 'M1'))?.id, 1);
    await table.close();
  });
  test('isCurrent(row) is peekTag(row.serviceTag) === row, and onSuperseded names each row as it stops being so, through replacements, deletions, tags taken over and pending catch-ups', async () => {
    // Few ids and fewer tags, so that tags move between machines (as with a lagging, out-of-order feed).
    const feed = new FakeFeed();
    let version = 0;
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (let id = 1; id <= 4; id++) feed.put({ id, version: ++version, serviceTag: `T${id}` });
    const { table, notifier } = await tableOn(feed);
    const seen = new Set<Readonly<BootTarget>>();
    // What a follower of onSuperseded holds: every row seen current, until it is named.
    const followed = new Set<Readonly<BootTarget>>();
    table.onSuperseded((row) => {
      assert.ok(!table.isCurrent(row), 'named once no longer current');
      followed.delete(row);
    });
    for (let step = 0; step < 600; step++) {
      const id = 1 + random(4);
      const op = random(10);
      if (op < 6) feed.put({ id, version: ++version, serviceTag: `T${1 + random(3)}`, status: random(2) === 0 ? 'ready' : 'building' });
      else if (op < 8 && feed.rows.has(id)) {
        feed.rows.delete(id);
        feed.tombstones.push({ id, version: ++version });
      } else if (op === 8) notifier.emit('machine.updated', id);
      if (op !== 8) await table.refresh();
      for (let t = 1; t <= 3; t++) {
        const row = table.peekTag(`T${t}`);
        if (row) {
          seen.add(row);
          followed.add(row);
        }
      }
      for (const row of seen) {
        assert.equal(table.isCurrent(row), table.peekTag(row.serviceTag) === row, `step ${step}, row ${row.id} of ${row.serviceTag}`);
        assert.equal(table.isCurrent(row), table.isUpToDate() && followed.has(row), `step ${step}, row ${row.id} of ${row.serviceTag}, as followed`);
      }
    }
    assert.ok(seen.size > 100, `${seen.size} rows seen`);
    await table.close();
  });
});
