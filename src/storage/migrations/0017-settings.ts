import type { Kysely } from 'kysely';

/**
 * Facts the servers keep about the fleet as a whole, by name. The first: which nixpkgs pin
 * (METAL_NIXPKGS) the machines' desired hashes were computed with, so a change of the pin is noticed
 * at start and every hash follows it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('settings')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
