import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * Token buckets of the sign-in throttle and the enrollment rate limit, shared by every replica on the
 * database: one row per (bucket, hashed key), deleted once it would be full again (`expires_at`).
 * Times are milliseconds since the epoch (doubles, exact to the millisecond), so the refill is
 * arithmetic in one SQL statement.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  let table = db.schema.createTable('rate_limits');
  // Unlogged on PostgreSQL: a take writes no WAL and waits for no flush. After a crash (or on a
  // promoted standby) the table is empty, so every bucket starts full, as after a restart.
  if (ctx.dialect === 'postgres') table = table.modifyFront(sql`unlogged`);
  await table
    .addColumn('bucket', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('tokens', 'double precision', (c) => c.notNull())
    .addColumn('allowed', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'double precision', (c) => c.notNull())
    .addColumn('expires_at', 'double precision', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_limits_pkey', ['bucket', 'key'])
    .execute();
  await db.schema.createIndex('rate_limits_expires_at').on('rate_limits').column('expires_at').execute();
}
