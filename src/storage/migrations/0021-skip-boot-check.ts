import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * A profile whose machines' builds skip the boot check (METAL_BUILD_BOOT_CHECK): configurations that
 * cannot come up in the builder's VM. Snapshotted on each build like the rest of its profile.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('profiles').addColumn('skip_boot_check', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('builds').addColumn('skip_boot_check', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}
