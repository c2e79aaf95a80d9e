import assert from 'node:assert/strict';
import { Readable, PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { BACKUP_TABLES, BackupError, restoreBackup, writeBackup } from './backup.ts';
import { migrate, openDatabase, type Database } from './database.ts';
import { MIGRATIONS } from './migrations/index.ts';

// The newest migration and the one before it, whatever they are today.
const LATEST = MIGRATIONS.at(-1)![0];
const BEFORE_LATEST = MIGRATIONS.at(-2)![0];
import { dataRows, SEEDED_ROWS, seedEveryTable } from '../../test/support/backup-seed.ts';
import { testDatabaseKinds, type TestDatabase } from '../../test/support/databases.ts';
import { pollUntil } from '../../test/support/poll.ts';

type AnyTables = Record<string, Record<string, unknown>>;

const KEY = 'sha256:0123456789abcdef';
const ROWS = SEEDED_ROWS;

/** Every row of every backed-up table, ordered by key, values as text (bigint arrives as text from PostgreSQL). */
async function contents(database: Database): Promise<Record<string, string[][]>> {
  const db = database.db as unknown as Kysely<AnyTables>;
  const out: Record<string, string[][]> = {};
  for (const { name, key } of BACKUP_TABLES) {
    const rows = (await key.reduce((query, k) => query.orderBy(sql.ref(k)), db.selectFrom(name).selectAll()).execute()) as Array<Record<string, unknown>>;
    out[name] = rows.map((row) =>
      Object.keys(row)
        .filter((c) => !(name === 'machines' && c === 'change_version'))
        .sort()
        .map((c) => `${c}=${row[c] === null ? 'NULL' : String(row[c])}`),
    );
  }
  return out;
}

/** A backup of `database` as its lines of text. */
async function backupText(database: Database): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await writeBackup(database, out, KEY, new Date('2026-11-30T00:00:00.000Z'));
  out.end();
  return Buffer.concat(chunks).toString('utf8');
}

const kinds = await testDatabaseKinds();
const opened: Array<{ database: Database; test: TestDatabase }> = [];
async function fresh(kind: { fresh: () => TestDatabase }, migrated = true): Promise<Database> {
  const test = kind.fresh();
  const database = await openDatabase(test.url);
  opened.push({ database, test });
  if (migrated) await migrate(database);
  return database;
}
after(async () => {
  for (const { database, test } of opened) {
    await database.close();
    await test.cleanup();
  }
});

for (const from of kinds) {
  describe(`backup from ${from.name}`, () => {
    for (const to of kinds) {
      test(`restores into ${to.name}: every row of every table, the same`, async () => {
        const source = await fresh(from);
        await seedEveryTable(source);
        const text = await backupText(source);
        const target = await fresh(to, false);
        const summary = await restoreBackup(target, Readable.from([text]), KEY);
        assert.equal(summary.rows.machines, ROWS);
        assert.deepEqual(Object.keys(summary.rows), BACKUP_TABLES.map((t) => t.name));
        assert.deepEqual(await contents(target), await contents(source));
        // What a restore leaves out is not carried.
        const db = target.db as unknown as Kysely<AnyTables>;
        for (const left of ['sessions', 'rate_limits', 'machine_tombstones']) {
          const n = (await db.selectFrom(left).select(sql<number | string>`count(*)`.as('n')).executeTakeFirstOrThrow()) as { n: number | string };
          assert.equal(Number(n.n), 0, left);
        }
        // New rows continue after the restored ids (PostgreSQL's sequences are set past them).
        const row = await db
          .insertInto('events')
          .values({ kind: 'test', actor_kind: 'system', actor_name: 'test', message: 'after the restore', created_at: '2026-11-30T00:00:00.000Z' })
          .returning('id')
          .executeTakeFirstOrThrow();
        assert.equal(Number(row.id), ROWS + 1);
        // The boot feed sees every restored machine as changed.
        const versions = await db.selectFrom('machines').select('change_version').execute();
        assert.ok(versions.every((v) => Number(v.change_version) > 0));
      });
    }

    test('tables longer than a page (a composite key across pages too) come back whole', async () => {
      const source = await fresh(from);
      await seedEveryTable(source);
      const db = source.db as unknown as Kysely<AnyTables>;
      const copy = async (table: string, keys: Array<Record<string, number | string>>) => {
        const template = (await db.selectFrom(table).selectAll().limit(1).executeTakeFirstOrThrow()) as Record<string, unknown>;
        for (let i = 0; i < keys.length; i += 100) await db.insertInto(table).values(keys.slice(i, i + 100).map((k) => ({ ...template, ...k }))).execute();
      };
      // builds are read 16 a page; rollout_machines 200 a page, by (rollout_id, machine_id).
      await copy('builds', Array.from({ length: 37 }, (_, i) => ({ id: ROWS + 1 + i, image_key: `key-${i}` })));
      await copy('rollout_machines', [1, 2, 3].flatMap((rollout) => Array.from({ length: 197 }, (_, i) => ({ rollout_id: rollout, machine_id: ROWS + 1 + i, lock_machine_id: rollout * 1000 + i }))));
      const target = await fresh(kinds[0]!, false);
      const summary = await restoreBackup(target, Readable.from([await backupText(source)]), KEY);
      assert.equal(summary.rows.builds, ROWS + 37);
      assert.equal(summary.rows.rollout_machines, ROWS + 3 * 197);
      assert.deepEqual(await contents(target), await contents(source));
    });

    test('the backup is one consistent read: a write during it is not in it', async () => {
      const source = await fresh(from);
      await seedEveryTable(source);
      const out = new PassThrough({ highWaterMark: 16 });
      const chunks: Buffer[] = [];
      const writing = writeBackup(source, out, KEY);
      // Once the header is written, the snapshot holds (it began with the first read) and the backup waits
      // for its lines to be taken; meanwhile another connection writes.
      await pollUntil('the backup has written its header', () => out.readableLength > 0, { timeoutMs: 10_000 });
      const other = await openDatabase(opened.find((o) => o.database === source)!.test.url);
      await (other.db as unknown as Kysely<AnyTables>).deleteFrom('events').execute();
      await other.close();
      out.on('data', (c: Buffer) => chunks.push(c));
      await writing;
      out.end();
      const text = Buffer.concat(chunks).toString('utf8');
      const end = JSON.parse(text.trim().split('\n').at(-1)!) as { end: Record<string, number> };
      assert.equal(end.end.events, ROWS, 'rows deleted during the backup are still in it');
      const left = (await (source.db as unknown as Kysely<AnyTables>).selectFrom('events').select(sql<number | string>`count(*)`.as('n')).executeTakeFirstOrThrow()) as { n: number | string };
      assert.equal(Number(left.n), 0, 'the delete happened');
    });

    test('refuses a database that is not a metal one, or not migrated, by name', async () => {
      const empty = await fresh(from, false);
      await assert.rejects(backupText(empty), (err: unknown) => err instanceof BackupError && /has no table users, .*run `metal migrate` first/.test(err.message));
    });

    test('refuses a database with a table it does not know, and writes no backup', async () => {
      const source = await fresh(from);
      await sql`create table surprise (id integer primary key)`.execute(source.db);
      await assert.rejects(backupText(source), (err: unknown) => err instanceof BackupError && /surprise/.test(err.message));
    });
  });
}

for (const kind of kinds) {
  describe(`restore into ${kind.name}: what it refuses (writing nothing), and a backup of an older schema`, () => {
    let good = '';
    test('a good backup to spoil', async () => {
      const source = await fresh(kind);
      await seedEveryTable(source);
      good = await backupText(source);
    });

    const lines = () => good.trimEnd().split('\n');
    const spoiled: Record<string, [() => string, RegExp]> = {
      'an empty file': [() => '', /empty/],
      'a file that is not a backup': [() => 'hello\n', /not a metal backup/],
      'JSON that is not a backup': [() => '{"format":"other"}\n', /not a metal backup/],
      'another format version': [() => [lines()[0]!.replace('"version":1', '"version":2'), ...lines().slice(1)].join('\n'), /format version 2/],
      'a newer schema': [() => [lines()[0]!.replace('"migrations":[', '"migrations":["9999-future",'), ...lines().slice(1)].join('\n'), /newer version of metal .*9999-future/],
      'a file cut short (no closing line)': [() => lines().slice(0, -1).join('\n'), /cut short/],
      'a file cut in the middle of a table': [() => lines().slice(0, Math.floor(lines().length / 2)).join('\n'), /cut short/],
      'a row dropped': [() => lines().filter((_, i) => i !== lines().length - 2).join('\n'), /closing line counts 3 rows in rollout_machines, the file holds 2/],
      'a row whose parent row is gone': [() => lines().filter((_, i) => i !== 3).join('\n'), /refused rows of api_tokens .*nothing was restored/],
      'a row with an object for a value': [() => lines().map((l, i) => (i === 2 ? l.replace(/^\[1,/, '[{"a":1},') : l)).join('\n'), /not text, a number or null/],
      'a row of the wrong length': [() => lines().map((l, i) => (i === 2 ? l.replace(/^\[1,/, '[') : l)).join('\n'), /values/],
      'a table it does not know': [() => lines().map((l) => l.replace('{"table":"events"', '{"table":"secrets"')).join('\n'), /does not restore \("secrets"\)/],
      'a column the database does not have': [() => lines().map((l) => l.replace('{"table":"users","columns":["id"', '{"table":"users","columns":["evil"')).join('\n'), /columns this database does not \(evil\)/],
      'lines after the end': [() => `${good}[1]\n`, /after its closing line/],
      'a line that is not JSON': [() => lines().map((l, i) => (i === 2 ? `${l}}` : l)).join('\n'), /not JSON/],
    };
    for (const [what, [make, reason]] of Object.entries(spoiled)) {
      test(what, async () => {
        const target = await fresh(kind, false);
        await assert.rejects(restoreBackup(target, Readable.from([make()]), KEY), (err: unknown) => {
          assert.ok(err instanceof BackupError && reason.test(err.message), `${what}: ${String(err)}`);
          return true;
        });
        assert.equal(await dataRows(target), 0);
      });
    }

    test('a database migrated past the backup (its schema newer than the rows)', async () => {
      const target = await fresh(kind);
      const older = [lines()[0]!.replace(`,"${LATEST}"`, ''), ...lines().slice(1)].join('\n');
      await assert.rejects(
        restoreBackup(target, Readable.from([older]), KEY),
        (err: unknown) => err instanceof BackupError && err.message.includes(`schema is newer than the backup's (it has migration ${LATEST}, the backup was taken at ${BEFORE_LATEST})`),
      );
      assert.equal(await dataRows(target), 0);
    });

    test('migrations out of order or with a gap', async () => {
      const target = await fresh(kind, false);
      const gap = [lines()[0]!.replace('"0002-auth",', ''), ...lines().slice(1)].join('\n');
      await assert.rejects(restoreBackup(target, Readable.from([gap]), KEY), (err: unknown) => err instanceof BackupError && /not this metal's, in order/.test(err.message));
      assert.equal(await dataRows(target), 0);
    });

    test('a backup of an older schema goes in at its schema, then the migrations since run over it', async () => {
      // The backup as metal would have written it at migration 0002: its tables and columns of then.
      const probe = await fresh(kind, false);
      await migrate(probe, '0002-auth');
      const then = new Map((await (probe.db as unknown as Kysely<AnyTables>).introspection.getTables()).map((t) => [t.name, t.columns.map((c) => c.name)]));
      const header = JSON.parse(lines()[0]!) as { migrations: string[] };
      const out = [JSON.stringify({ ...header, migrations: header.migrations.slice(0, 2) })];
      let keep: number[] | undefined;
      const counts: Record<string, number> = {};
      let table = '';
      for (const line of lines().slice(1)) {
        const value = JSON.parse(line) as unknown;
        if (Array.isArray(value)) {
          if (keep) {
            out.push(JSON.stringify(keep.map((i) => value[i])));
            counts[table]! += 1;
          }
          continue;
        }
        const record = value as { table?: string; columns?: string[] };
        if (!record.table) break;
        const columns = then.get(record.table);
        table = record.table;
        keep = columns ? record.columns!.flatMap((c, i) => (columns.includes(c) ? [i] : [])) : undefined;
        if (keep) {
          counts[table] = 0;
          out.push(JSON.stringify({ table, columns: keep.map((i) => record.columns![i]) }));
        }
      }
      out.push(JSON.stringify({ end: counts }));
      assert.deepEqual(Object.keys(counts), ['users', 'api_tokens', 'machines', 'builds', 'events']);
      const target = await fresh(kind, false);
      const summary = await restoreBackup(target, Readable.from([out.join('\n')]), KEY);
      assert.equal(summary.rows.machines, ROWS);
      const db = target.db as unknown as Kysely<AnyTables>;
      const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
      assert.equal(applied.rows.at(-1)!.name, LATEST, 'brought up to date after the rows went in');
      // Migration 0003 filled search_text from the columns of each restored machine.
      const machine = (await db.selectFrom('machines').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()) as Record<string, string>;
      const expected = [machine.service_tag, machine.hostname, machine.mac_address, machine.manufacturer, machine.model].join(' ').toLowerCase();
      assert.equal(machine.search_text, expected);
    });

    test('a backup sealed with another secret key', async () => {
      const target = await fresh(kind, false);
      await assert.rejects(restoreBackup(target, Readable.from([good]), 'sha256:ffffffffffffffff'), (err: unknown) => err instanceof BackupError && /METAL_SECRET_KEY/.test(err.message) && err.message.includes(KEY));
      assert.equal(await dataRows(target), 0);
    });

    test('a database that holds data already', async () => {
      const target = await fresh(kind);
      const db = target.db as unknown as Kysely<AnyTables>;
      await db.insertInto('settings').values({ name: 'kept', value: 'as it was', updated_at: '2026-01-01T00:00:00.000Z' }).execute();
      await assert.rejects(restoreBackup(target, Readable.from([good]), KEY), (err: unknown) => err instanceof BackupError && /not empty \(settings: 1 row\)/.test(err.message));
      assert.equal(await dataRows(target), 1);
      assert.deepEqual(await db.selectFrom('settings').select(['name', 'value']).execute(), [{ name: 'kept', value: 'as it was' }]);
    });
  });
}
