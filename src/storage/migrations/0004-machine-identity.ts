import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { isPlaceholderUuid, isUuid } from '../../core/validation.ts';
import type { MigrationContext } from './context.ts';

interface Row {
  id: number;
  service_tag: string;
  mac_address: string;
  system_uuid: string | null;
}

/**
 * A MAC or SMBIOS UUID belongs to at most one machine. `identity_mac` is the MAC a machine owns (what
 * `?mac=` boot requests find), `system_uuid` the UUID it owns; both unique, lower-case. Older databases
 * may hold duplicates: the lowest id keeps the value, every other machine gives it up and is flagged with
 * an `identity_conflict` (JSON) for an operator to accept or reject. Placeholder UUIDs are dropped.
 *
 * Builds get an `image_key` (128 random bits): their images are served under `builds/<image key>/`,
 * no longer under a build id anyone can count to. Published builds' artifact URLs follow. `boot_nonce`
 * holds the hash of the single-use token of the latest image script handed out.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('machines').addColumn('identity_mac', 'text').execute();
  await db.schema.alterTable('machines').addColumn('identity_conflict', 'text').execute();
  const now = new Date().toISOString();
  const rows = (await sql<Row>`select id, service_tag, mac_address, system_uuid from machines order by id`.execute(db)).rows;
  const macOwner = new Map<string, string>();
  const uuidOwner = new Map<string, string>();
  for (const row of rows) {
    const mac = row.mac_address.toLowerCase();
    const rawUuid = row.system_uuid?.toLowerCase() ?? null;
    const uuid = rawUuid !== null && isUuid(rawUuid) && !isPlaceholderUuid(rawUuid) ? rawUuid : null;
    const heldBy = [macOwner.get(mac), uuid === null ? undefined : uuidOwner.get(uuid)].filter((t): t is string => t !== undefined);
    const ownsMac = !macOwner.has(mac);
    const ownsUuid = uuid !== null && !uuidOwner.has(uuid);
    if (ownsMac) macOwner.set(mac, row.service_tag);
    if (ownsUuid) uuidOwner.set(uuid, row.service_tag);
    const conflict =
      heldBy.length === 0
        ? null
        : JSON.stringify({ mac_address: mac, system_uuid: uuid, held_by: [...new Set(heldBy)], claimed_at: now, address: null });
    await sql`update machines set identity_mac = ${ownsMac ? mac : null}, system_uuid = ${ownsUuid ? uuid : null},
      identity_conflict = ${conflict} where id = ${row.id}`.execute(db);
  }
  await db.schema.dropIndex('machines_system_uuid').execute();
  await giveBuildsImageKeys(db);
  await db.schema.createIndex('machines_identity_mac').on('machines').column('identity_mac').unique().execute();
  await db.schema.createIndex('machines_system_uuid_unique').on('machines').column('system_uuid').unique().execute();
}

/** A random image key for every build, and artifact URLs rewritten from `builds/<id>/` to it. */
async function giveBuildsImageKeys(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('builds').addColumn('image_key', 'text').execute();
  await db.schema.alterTable('builds').addColumn('boot_nonce', 'text').execute();
  const builds = (await sql<{ id: number; artifact_url: string | null }>`select id, artifact_url from builds order by id`.execute(db)).rows;
  for (const build of builds) {
    const key = randomBytes(16).toString('base64url');
    const url = build.artifact_url?.replace(/\/images\/builds\/\d+\/$/, `/images/builds/${key}/`) ?? null;
    await sql`update builds set image_key = ${key}, artifact_url = ${url} where id = ${build.id}`.execute(db);
  }
  await db.schema.createIndex('builds_image_key').on('builds').column('image_key').unique().execute();
}
