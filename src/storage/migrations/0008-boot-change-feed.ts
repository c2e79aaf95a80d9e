import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * A change feed for the boot server's in-memory decision table: every write to a machine that is not
 * only a last-seen touch gives it a new `change_version`, a deleted machine leaves a tombstone with
 * one, and on PostgreSQL each change is announced with NOTIFY on `metal_changes` (the payload is the
 * schema, so several installations can share a database). Readers catch up with
 * `change_version > cursor`.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('machines').addColumn('change_version', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema
    .createTable('machine_tombstones')
    .addColumn('machine_id', 'bigint', (c) => c.primaryKey())
    .addColumn('change_version', 'bigint', (c) => c.notNull())
    .execute();
  // A write that changes updated_at (every store write but the batched last-seen touch) is a change.
  const isChange = (distinct: string, same: string) =>
    `not (new.last_seen_at ${distinct} old.last_seen_at and new.updated_at ${same} old.updated_at)`;
  if (ctx.dialect === 'postgres') {
    await sql`create sequence metal_change_seq`.execute(db);
    await sql.raw(`
      create function metal_machine_changed() returns trigger language plpgsql as $$
      begin
        if tg_op = 'DELETE' then
          insert into machine_tombstones (machine_id, change_version) values (old.id, nextval('metal_change_seq'))
            on conflict (machine_id) do update set change_version = excluded.change_version;
          perform pg_notify('metal_changes', current_schema());
          return old;
        end if;
        new.change_version := nextval('metal_change_seq');
        perform pg_notify('metal_changes', current_schema());
        return new;
      end $$`).execute(db);
    await sql.raw(`create trigger machines_change_insert before insert on machines for each row execute function metal_machine_changed()`).execute(db);
    await sql
      .raw(
        `create trigger machines_change_update before update on machines for each row
         when (${isChange('is distinct from', 'is not distinct from')}) execute function metal_machine_changed()`,
      )
      .execute(db);
    await sql.raw(`create trigger machines_change_delete after delete on machines for each row execute function metal_machine_changed()`).execute(db);
    await sql`select setval('metal_change_seq', 1, false)`.execute(db);
    await sql`update machines set change_version = nextval('metal_change_seq')`.execute(db);
  } else {
    await db.schema
      .createTable('change_counter')
      .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
      .addColumn('version', 'integer', (c) => c.notNull())
      .execute();
    await sql`insert into change_counter (id, version) values (1, 0)`.execute(db);
    const bump = `update change_counter set version = version + 1 where id = 1;`;
    const current = `(select version from change_counter where id = 1)`;
    await sql
      .raw(`create trigger machines_change_insert after insert on machines begin ${bump} update machines set change_version = ${current} where id = new.id; end`)
      .execute(db);
    await sql
      .raw(
        `create trigger machines_change_update after update on machines when ${isChange('is not', 'is')}
         begin ${bump} update machines set change_version = ${current} where id = new.id; end`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger machines_change_delete after delete on machines begin ${bump}
         insert or replace into machine_tombstones (machine_id, change_version) values (old.id, ${current}); end`,
      )
      .execute(db);
    await sql`update machines set change_version = id`.execute(db);
    await sql`update change_counter set version = coalesce((select max(id) from machines), 0)`.execute(db);
  }
  await db.schema.createIndex('machines_change_version').on('machines').column('change_version').execute();
}
