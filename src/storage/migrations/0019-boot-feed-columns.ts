import { sql, type Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * The columns of `machines` the boot change feed reads (`src/storage/boot-feed.ts`). A build's boot
 * token and image key, which the feed reads too, never change once the build exists, so a change of
 * `image_build_id` covers them. Frozen here as this migration wrote its trigger: a column the feed
 * starts reading needs a migration that writes the trigger again (the feed's test fails until then).
 */
const BOOT_COLUMNS = ['service_tag', 'identity_mac', 'system_uuid', 'identity_conflict', 'status', 'image_build_id'];

/**
 * Until now every write to a machine but the batched last-seen touch was a change of the boot feed
 * (migration 0008): a new `change_version`, a NOTIFY on PostgreSQL, and every boot process reading
 * the row again. Most writes change nothing a boot decision reads: a hostname, labels, a profile, a
 * re-registration's hardware facts, the search text, and above all the desired hash, which a new
 * nixpkgs pin rewrites on every machine at once (every boot process then read the whole fleet again,
 * and on PostgreSQL each of those updates touched the change-version index, so none could be a
 * heap-only update). From here on an update is a change only when a column the feed reads changes.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  if (ctx.dialect === 'postgres') {
    await sql`drop trigger machines_change_update on machines`.execute(db);
    const changed = BOOT_COLUMNS.map((c) => `new.${c} is distinct from old.${c}`).join(' or ');
    await sql
      .raw(`create trigger machines_change_update before update on machines for each row when (${changed}) execute function metal_machine_changed()`)
      .execute(db);
  } else {
    await sql`drop trigger machines_change_update`.execute(db);
    const changed = BOOT_COLUMNS.map((c) => `new.${c} is not old.${c}`).join(' or ');
    await sql
      .raw(
        `create trigger machines_change_update after update on machines when ${changed}
         begin update change_counter set version = version + 1 where id = 1;
         update machines set change_version = (select version from change_counter where id = 1) where id = new.id; end`,
      )
      .execute(db);
  }
}
