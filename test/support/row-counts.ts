import type { AppContext } from '../../src/server/context.ts';
import { sqlOf } from './context.ts';

const tableNames = new WeakMap<AppContext, Promise<string[]>>();

/** Rows in every table of the context's database (migration bookkeeping aside), by table name. */
export async function rowCounts(ctx: AppContext): Promise<Record<string, number>> {
  const db = sqlOf(ctx);
  let names = tableNames.get(ctx);
  if (!names) {
    // On PostgreSQL the introspection sees only this database's schema (src/storage/postgres-introspection.ts).
    names = db.introspection.getTables().then((all) => all.map((t) => t.name).filter((name) => !name.startsWith('kysely_')).sort());
    tableNames.set(ctx, names);
  }
  const tables = await names;
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const row = await db
      .selectFrom(table as 'machines')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}
