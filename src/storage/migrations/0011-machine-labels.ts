import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * Labels on machines (`role=web`, `rack=r12`): one JSON object per machine, written whole and read with
 * the row. Selectors (`role=web,rack in (r12,r13)`) are compiled to JSON lookups on this column.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('machines').addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}')).execute();
}
