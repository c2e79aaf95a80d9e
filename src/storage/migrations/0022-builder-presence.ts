import type { Kysely } from 'kysely';

/**
 * Builders say they are there: each running builder keeps one row up to date (a heartbeat), so that a
 * build waiting with no builder to take it can say so, and idle builders are seen, not only busy ones.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('builder_presence')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('concurrency', 'integer', (c) => c.notNull())
    .addColumn('running', 'integer', (c) => c.notNull())
    .addColumn('boot_check', 'text', (c) => c.notNull())
    .addColumn('secure_boot', 'text')
    .execute();
}
