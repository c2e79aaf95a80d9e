import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * One lower-cased column holding what a machine search matches (tag, hostname, MAC, vendor, model),
 * so a search reads one short column per machine instead of lower-casing five.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('machines').addColumn('search_text', 'text', (c) => c.notNull().defaultTo('')).execute();
  await sql`update machines set search_text = lower(
      service_tag || ' ' || coalesce(hostname, '') || ' ' || mac_address || ' ' ||
      coalesce(manufacturer, '') || ' ' || coalesce(model, ''))`.execute(db);
}
