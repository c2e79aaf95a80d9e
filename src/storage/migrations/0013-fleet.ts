import { sql, type ColumnDefinitionBuilder, type Kysely } from 'kysely';
import { idColumnType, type MigrationContext } from './context.ts';

/**
 * The fleet layer (issue 15): profiles (a NixOS module shared by many machines, with an optional
 * hostname pattern and kernel parameters), rules applied at first enrollment, a machine's profile and
 * the hash of its effective configuration, the hash each build was made from, and one machine per
 * hostname.
 *
 * A machine names its profile by the profile's name (immutable once created) rather than by its id,
 * so every read of a machine carries the name without a join. A database that already holds one
 * hostname on several machines cannot take the unique index: the migration stops and names them.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  const duplicates = (
    await sql<{ hostname: string; n: number | string; tags: string | null }>`
      select hostname, count(*) as n, ${ctx.dialect === 'postgres' ? sql`string_agg(service_tag, ', ' order by id)` : sql`group_concat(service_tag, ', ')`} as tags
      from machines where hostname is not null group by hostname having count(*) > 1 order by hostname`.execute(db)
  ).rows;
  if (duplicates.length > 0) {
    const named = duplicates.map((d) => `${d.hostname} (${Number(d.n)} machines: ${d.tags ?? ''})`).join('; ');
    throw new Error(`hostnames must be unique, and these are held by more than one machine: ${named}. Give each machine its own hostname, then migrate again`);
  }
  const id = idColumnType(ctx);
  const primary = (c: ColumnDefinitionBuilder) => (ctx.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());

  await db.schema
    .createTable('profiles')
    .addColumn('id', id, primary)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('nixos_config', 'text', (c) => c.notNull())
    .addColumn('hostname_pattern', 'text')
    .addColumn('kernel_params', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('auto_build', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('rules')
    .addColumn('id', id, primary)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(100))
    .addColumn('match', 'text', (c) => c.notNull())
    .addColumn('set', 'text', (c) => c.notNull())
    .addColumn('build', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rules_order').on('rules').columns(['priority', 'id']).execute();

  await db.schema.alterTable('machines').addColumn('profile', 'text', (c) => c.references('profiles.name')).execute();
  await db.schema.alterTable('machines').addColumn('desired_hash', 'text').execute();
  await db.schema.alterTable('machines').addColumn('built_hash', 'text').execute();
  await db.schema.createIndex('machines_profile').on('machines').column('profile').execute();
  await db.schema.createIndex('machines_hostname_unique').on('machines').column('hostname').unique().execute();

  await db.schema.alterTable('builds').addColumn('profile_name', 'text').execute();
  await db.schema.alterTable('builds').addColumn('profile_config', 'text').execute();
  await db.schema.alterTable('builds').addColumn('kernel_params', 'text', (c) => c.notNull().defaultTo('[]')).execute();
  await db.schema.alterTable('builds').addColumn('config_hash', 'text').execute();
}
