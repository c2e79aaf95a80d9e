import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/** Leases of the optional full DHCP server of the pxe role (METAL_DHCP_RANGE): one per address. */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('dhcp_leases')
    .addColumn('address', 'text', (c) => c.primaryKey())
    .addColumn('mac', 'text', (c) => c.notNull().unique())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
