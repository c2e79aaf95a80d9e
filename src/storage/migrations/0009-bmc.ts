import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import { idColumnType, type MigrationContext } from './context.ts';

/**
 * Power control: named BMC credential sets, and one power row per machine (its BMC, the last power state
 * seen, reboot-on-publish). Kept apart from `machines` so that a power state refresh every few minutes is
 * not a machine change for the boot change feed. Passwords are stored sealed by the secret box.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  const primary = (c: ColumnDefinitionBuilder) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
  await db.schema
    .createTable('bmc_credential_sets')
    .addColumn('id', idColumnType(ctx), primary)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('password_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('machine_power')
    .addColumn('machine_id', 'integer', (c) => c.primaryKey().references('machines.id').onDelete('cascade'))
    .addColumn('bmc_type', 'text')
    .addColumn('bmc_address', 'text')
    .addColumn('bmc_username', 'text')
    .addColumn('bmc_password_sealed', 'text')
    .addColumn('credential_set_id', 'integer', (c) => c.references('bmc_credential_sets.id'))
    .addColumn('verify_tls', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('tls_fingerprint', 'text')
    .addColumn('tls_ca_bundle', 'text')
    .addColumn('redfish_auth', 'text', (c) => c.notNull().defaultTo('session'))
    .addColumn('system_id', 'text')
    .addColumn('power_state', 'text', (c) => c.notNull().defaultTo('unknown'))
    .addColumn('checked_at', 'text')
    .addColumn('reboot_on_publish', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('reboot_build_id', 'integer')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('machine_power_credential_set').on('machine_power').column('credential_set_id').execute();
}
