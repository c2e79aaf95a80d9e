import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import { BACKUP_TABLES, LEFT_OUT_TABLES } from '../../src/storage/backup.ts';
import type { Database } from '../../src/storage/database.ts';

type AnyTables = Record<string, Record<string, unknown>>;

/** Rows seedEveryTable writes into each table. */
export const SEEDED_ROWS = 3;
const ROWS = SEEDED_ROWS;
/** Text columns that are foreign keys to another table's text column (the seed must point at real rows). */
const TEXT_REFERENCES: Record<string, string> = { 'machines.profile': 'profiles.name' };
/** Text that a careless writer or reader would mangle: quotes, a newline, a backslash, a tab, non-ASCII and an emoji. */
const AWKWARD = ' "quoted", \\ back\\slash\n\tline two; ✓ 😀';

function textValue(table: string, column: string, i: number): string {
  const [target, targetColumn] = (TEXT_REFERENCES[`${table}.${column}`] ?? `${table}.${column}`).split('.');
  return `${target}.${targetColumn}.${i}${AWKWARD}`;
}

/**
 * Fills every table the backup holds (and every one it leaves out) with ROWS rows whose every column
 * has a value (integer keys 1..ROWS, so foreign keys find their rows), from the migrated schema
 * itself: a column or table added later is seeded, and so covered, without touching this test.
 */
export async function seedEveryTable(database: Database): Promise<void> {
  const db = database.db as unknown as Kysely<AnyTables>;
  const tables = await db.introspection.getTables();
  const byName = new Map(tables.map((t) => [t.name, t]));
  const order = [...BACKUP_TABLES.map((t) => t.name), ...Object.keys(LEFT_OUT_TABLES).filter((t) => t !== 'change_counter')];
  for (const name of order) {
    const table = byName.get(name);
    assert.ok(table, `table ${name} exists after migrate`);
    for (let i = 1; i <= ROWS; i++) {
      const row: Record<string, unknown> = {};
      for (const column of table.columns) {
        if (name === 'machines' && column.name === 'change_version') continue;
        const type = column.dataType.toLowerCase();
        if (type.includes('int') || type === 'serial') row[column.name] = i;
        else if (type.includes('double') || type.includes('real') || type.includes('float')) row[column.name] = i + 0.25;
        else row[column.name] = textValue(name, column.name, i);
      }
      await db.insertInto(name).values(row).execute();
    }
  }
}

/** Rows in the tables a backup holds, all together (a refused restore must leave 0). */
export async function dataRows(database: Database): Promise<number> {
  const db = database.db as unknown as Kysely<AnyTables>;
  const tables = new Set((await db.introspection.getTables()).map((t) => t.name));
  let total = 0;
  for (const { name } of BACKUP_TABLES) {
    if (!tables.has(name)) continue;
    const row = (await db.selectFrom(name).select(sql<number | string>`count(*)`.as('n')).executeTakeFirstOrThrow()) as { n: number | string };
    total += Number(row.n);
  }
  return total;
}
