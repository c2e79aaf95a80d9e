import { sql, type Kysely } from 'kysely';
import { idColumnType, type MigrationContext } from './context.ts';

/** machines, builds and events, with the indexes the list filters need. */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('machines')
    .addColumn('id', idColumnType(ctx), (c) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
    .addColumn('service_tag', 'text', (c) => c.notNull().unique())
    .addColumn('mac_address', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('hostname', 'text')
    .addColumn('description', 'text')
    .addColumn('hardware', 'text', (c) => c.notNull())
    .addColumn('manufacturer', 'text')
    .addColumn('model', 'text')
    .addColumn('system_uuid', 'text')
    .addColumn('nixos_config', 'text')
    .addColumn('last_build_id', 'integer')
    .addColumn('image_build_id', 'integer')
    .addColumn('booted_build_id', 'integer')
    .addColumn('booted_at', 'text')
    .addColumn('enrolled_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text')
    .execute();
  await db.schema.createIndex('machines_status').on('machines').columns(['status', 'id']).execute();
  await db.schema.createIndex('machines_mac_address').on('machines').column('mac_address').execute();
  await db.schema.createIndex('machines_system_uuid').on('machines').column('system_uuid').execute();
  await db.schema.createIndex('machines_hostname').on('machines').column('hostname').execute();

  await db.schema
    .createTable('builds')
    .addColumn('id', idColumnType(ctx), (c) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
    .addColumn('machine_id', 'integer', (c) => c.notNull().references('machines.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('config', 'text', (c) => c.notNull())
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('service_tag', 'text', (c) => c.notNull())
    .addColumn('log_output', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('error', 'text')
    .addColumn('artifact_url', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('boot_token', 'text', (c) => c.notNull())
    .addColumn('store_path', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('completed_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('builds_machine').on('builds').columns(['machine_id', 'id']).execute();
  await db.schema.createIndex('builds_status').on('builds').columns(['status', 'id']).execute();
  // At most one pending or running build per machine, enforced by the database itself.
  await db.schema
    .createIndex('builds_one_active_per_machine')
    .on('builds')
    .column('machine_id')
    .unique()
    .where(sql.ref('status'), 'in', sql`('pending', 'building')`)
    .execute();

  await db.schema
    .createTable('events')
    .addColumn('id', idColumnType(ctx), (c) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('machine_id', 'integer')
    .addColumn('build_id', 'integer')
    .addColumn('actor_kind', 'text', (c) => c.notNull())
    .addColumn('actor_name', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('data', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_machine').on('events').columns(['machine_id', 'id']).execute();
  await db.schema.createIndex('events_build').on('events').columns(['build_id', 'id']).execute();
  await db.schema.createIndex('events_kind').on('events').columns(['kind', 'id']).execute();
  await db.schema.createIndex('events_actor').on('events').columns(['actor_kind', 'actor_name', 'id']).execute();
  await db.schema.createIndex('events_created_at').on('events').column('created_at').execute();
}
