import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * Token buckets of the sign-in throttle and the enrollment rate limit, shared by every replica on the
 * database: one row per (bucket, hashed key), deleted once it would be full again (`expires_at`).
 * Times are milliseconds since the epoch (doubles, exact to the millisecond), so the refill is
 * arithmetic in one SQL statement.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('rate_limits')
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
