import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * How long a successful build's image took to report booted in the builder's VM
 * (METAL_BUILD_BOOT_CHECK); null when it was not checked.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('builds').addColumn('boot_check_seconds', 'integer').execute();
}
