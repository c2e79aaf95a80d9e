import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { BACKUP_TABLES, BackupError, restoreBackup, writeBackup } from '../../src/storage/backup.ts';
import { migrate, openDatabase, type Database } from '../../src/storage/database.ts';
import { dataRows, seedEveryTable } from '../support/backup-seed.ts';
import { testDatabaseKinds, type TestDatabase } from '../support/databases.ts';
import { hostileString, runs } from '../support/hostile.ts';

/**
 * `metal restore` reads a file an operator hands it, which may be damaged, cut, edited or not a backup
 * at all. Generated damage to a real backup (lines dropped, repeated, swapped, cut, edited; hostile
 * values and table headers put in; bytes of the gzip file flipped or cut): the restore either
 * succeeds or refuses with a BackupError (a message for the operator, never a driver's stack), and a
 * refusal leaves the database without a row.
 */

const KEY = 'sha256:0123456789abcdef';

/** A backup's rows, without its header (which holds the time it was taken); of a database, or of a backup's text. */
function backupBody(of: string): string;
function backupBody(of: Database): Promise<string>;
function backupBody(of: string | Database): string | Promise<string> {
  const body = (text: string) => text.slice(text.indexOf('\n') + 1);
  if (typeof of === 'string') return body(of);
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return writeBackup(of, out, KEY).then(() => body(Buffer.concat(chunks).toString('utf8')));
}

/** One change to a backup's lines. */
const lineEdit = (count: number) =>
  fc.oneof(
    fc.record({ kind: fc.constant('drop' as const), at: fc.nat(count - 1) }),
    fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(count - 1) }),
    fc.record({ kind: fc.constant('swap' as const), at: fc.nat(count - 1), with: fc.nat(count - 1) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(count - 1), chars: fc.nat(200) }),
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(count - 1), text: hostileString(60) }),
    fc.record({ kind: fc.constant('value' as const), at: fc.nat(count - 1), value: fc.oneof(fc.jsonValue(), hostileString(40), fc.double(), fc.bigInt().map(String)) }),
    fc.record({
      kind: fc.constant('table' as const),
      at: fc.nat(count - 1),
      table: fc.oneof(fc.constantFrom(...BACKUP_TABLES.map((t) => t.name), 'sessions', 'kysely_migration', '__proto__'), hostileString(20)),
      columns: fc.array(fc.oneof(fc.constantFrom('id', 'username', 'role', 'service_tag', '"id"', 'id; drop table users', '__proto__'), hostileString(20)), { maxLength: 4 }),
    }),
  );
type LineEdit = ReturnType<typeof lineEdit> extends fc.Arbitrary<infer T> ? T : never;

function applyEdits(lines: string[], edits: LineEdit[]): string {
  const out = [...lines];
  for (const edit of edits) {
    const at = Math.min(edit.at, out.length - 1);
    if (at < 0) break;
    switch (edit.kind) {
      case 'drop':
        out.splice(at, 1);
        break;
      case 'repeat':
        out.splice(at, 0, out[at]!);
        break;
      case 'swap': {
        const other = Math.min(edit.with, out.length - 1);
        [out[at], out[other]] = [out[other]!, out[at]!];
        break;
      }
      case 'cut':
        out[at] = out[at]!.slice(0, edit.chars);
        break;
      case 'replace':
        out[at] = edit.text;
        break;
      case 'value': {
        const row = (() => {
          try {
            return JSON.parse(out[at]!) as unknown;
          } catch {
            return undefined;
          }
        })();
        if (Array.isArray(row) && row.length > 0) {
          row[edit.at % row.length] = edit.value;
          out[at] = JSON.stringify(row);
        }
        break;
      }
      case 'table':
        out.splice(at, 0, JSON.stringify({ table: edit.table, columns: edit.columns }));
        break;
    }
  }
  return out.join('\n');
}

const kinds = await testDatabaseKinds();
const opened: Array<{ database: Database; test: TestDatabase }> = [];
after(async () => {
  for (const { database, test } of opened) {
    await database.close().catch(() => undefined);
    await test.cleanup();
  }
});

for (const kind of kinds) {
  describe(`hostile backups restored into ${kind.name}`, { timeout: 600_000 }, () => {
    const fresh = async (): Promise<{ database: Database; done: () => Promise<void> }> => {
      const test = kind.fresh();
      const database = await openDatabase(test.url);
      return {
        database,
        done: async () => {
          await database.close();
          await test.cleanup();
        },
      };
    };
    let good = '';
    test('a real backup to damage', async () => {
      const test = kind.fresh();
      const database = await openDatabase(test.url);
      opened.push({ database, test });
      await migrate(database);
      await seedEveryTable(database);
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      await writeBackup(database, out, KEY);
      out.end();
      good = Buffer.concat(chunks).toString('utf8');
    });

    /** Restores `input`; a success or a BackupError with no row left, else the property fails. */
    const restoreOrRefuse = async (input: Readable) => {
      const { database, done } = await fresh();
      try {
        await restoreBackup(database, input, KEY);
      } catch (err) {
        assert.ok(err instanceof BackupError, `not a BackupError: ${String(err)}`);
        assert.ok(!/\n\s+at /.test(err.message), 'no stack in the message');
        assert.equal(await dataRows(database), 0, `a refused restore wrote rows (${err.message})`);
      } finally {
        await done();
      }
    };

    test('damaged lines: restored or refused with nothing written', async () => {
      const lines = good.trimEnd().split('\n');
      await fc.assert(
        fc.asyncProperty(fc.array(lineEdit(lines.length), { minLength: 1, maxLength: 4 }), async (edits) => {
          await restoreOrRefuse(Readable.from([applyEdits(lines, edits)]));
        }),
        { seed: 20261130, numRuns: runs(kind.name === 'sqlite' ? 60 : 25) },
      );
    });

    test('damaged gzip bytes: refused with nothing written, or (a byte gzip does not check) the same rows', async () => {
      const zipped = gzipSync(good);
      await fc.assert(
        fc.asyncProperty(fc.nat(zipped.length - 1), fc.integer({ min: 1, max: 255 }), fc.boolean(), async (at, flip, cut) => {
          const damaged = Buffer.from(zipped);
          if (!cut) damaged[at]! ^= flip;
          const { database, done } = await fresh();
          try {
            await restoreBackup(database, Readable.from([cut ? damaged.subarray(0, at) : damaged]), KEY, { gunzip: true });
            // Only header bytes outside gzip's checks (flags, time, OS) can change and still restore.
            assert.ok(!cut && at < 10, `byte ${at} ${cut ? 'cut' : `xor ${flip}`} restored`);
            assert.equal(await backupBody(database), backupBody(good));
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            assert.ok(err instanceof BackupError, `not a BackupError: ${String(err)}`);
            assert.equal(await dataRows(database), 0);
          } finally {
            await done();
          }
        }),
        { seed: 20261130, numRuns: runs(kind.name === 'sqlite' ? 40 : 15) },
      );
    });
  });
}
