import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import { idColumnType, type MigrationContext } from './context.ts';

/**
 * Rollback, build retention and rollouts. Builds gain `hold` (a rollout's build: published under
 * builds/<id> on success but not pointed at until its wave) and `image_swept_at` (retention deleted its
 * image; the row stays). Machines gain `reboot_requested_at` (the in-image agent reboots when it is set
 * and the machine's image changed). Rollouts and their machines are new tables; a rollout's lease
 * (owner, expiry) lets one server drive it at a time, and `lock_machine_id` (unique, set while the
 * rollout is active) refuses a second active rollout over the same machine.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  const primary = (c: ColumnDefinitionBuilder) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
  await db.schema.alterTable('builds').addColumn('hold', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('builds').addColumn('image_swept_at', 'text').execute();
  await db.schema.alterTable('builds').addColumn('rollout_id', 'integer').execute();
  await db.schema.alterTable('machines').addColumn('reboot_requested_at', 'text').execute();
  await db.schema
    .createTable('rollouts')
    .addColumn('id', idColumnType(ctx), primary)
    .addColumn('selector', 'text', (c) => c.notNull())
    .addColumn('build_mode', 'text', (c) => c.notNull())
    .addColumn('canary', 'integer', (c) => c.notNull())
    .addColumn('batch_size', 'integer', (c) => c.notNull())
    .addColumn('max_unavailable', 'integer', (c) => c.notNull())
    .addColumn('max_failures', 'integer', (c) => c.notNull())
    .addColumn('health_timeout_seconds', 'integer', (c) => c.notNull())
    .addColumn('reboot', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('wave', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('waves', 'integer', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('resume_state', 'text')
    .addColumn('message', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('rollouts_state').on('rollouts').columns(['state', 'id']).execute();
  await db.schema
    .createTable('rollout_machines')
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('machine_id', 'integer', (c) => c.notNull())
    .addColumn('service_tag', 'text', (c) => c.notNull())
    .addColumn('wave', 'integer', (c) => c.notNull())
    .addColumn('from_build_id', 'integer')
    .addColumn('to_build_id', 'integer')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('message', 'text')
    .addColumn('started_at', 'text')
    .addColumn('deadline_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('lock_machine_id', 'integer', (c) => c.unique())
    .addPrimaryKeyConstraint('rollout_machines_pk', ['rollout_id', 'machine_id'])
    .execute();
  await db.schema.createIndex('rollout_machines_machine').on('rollout_machines').columns(['machine_id', 'rollout_id']).execute();
}
