import type { Kysely } from 'kysely';
import type { Schema } from './schema.ts';

/** Rows per status of a table with a `status` column, e.g. `{ready: 12, building: 1}`. */
export async function countByStatus(db: Kysely<Schema>, table: 'machines' | 'builds'): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom(table)
    .select(['status', (eb) => eb.fn.countAll<string | number>().as('n')])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}
