import { sql, type Kysely, type RawBuilder, type Selectable, type Updateable } from 'kysely';
import { cablingSearchText } from '../core/cabling.ts';
import type { Requirement } from '../core/labels.ts';
import {
  DuplicateKeyError,
  type BootKey,
  type BootTarget,
  type IdentityHolder,
  type MachineConditions,
  type MachineFilter,
  type MachineIdentity,
  type MachinePatch,
  type MachineStore,
  type NewMachine,
  type SummaryRow,
} from '../core/ports.ts';
import type { Hardware, IdentityConflict, Machine } from '../core/types.ts';
import { isUniqueViolation } from './unique-violation.ts';
import { countByStatus } from './count-by-status.ts';
import { toMachine } from './rows.ts';
import { ENTRY_FILE } from '../core/config-files.ts';
import type { MachinesTable, Schema } from './schema.ts';
import type { Dialect } from './migrations/context.ts';
import type { SqliteSideWriter } from './sqlite-side-writer.ts';

/** Machines whose desired hash one statement writes (two bound parameters each). */
const DESIRED_HASH_BATCH = 500;
/** Machine ids a lookup by id names in one query (well under SQLite's and PostgreSQL's parameter limits). */
const ID_BATCH = 500;

/** The machines table. */
export class SqlMachineStore implements MachineStore {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly dialect: Dialect,
    /** True when bound to a transaction (claimHostname then uses a savepoint). */
    private readonly inTransaction = false,
    /** SQLite on a file: where touchLastSeen writes, off the main thread. */
    private readonly sideWriter?: SqliteSideWriter,
  ) {}

  /**
   * One selector requirement as a condition on the `labels` JSON column. Keys and values are bound
   * parameters (and were validated by core/labels.ts); labels are strings, so "has the key" is
   * "its value is not null".
   */
  private labelCondition(r: Requirement): RawBuilder<boolean> {
    const value =
      this.dialect === 'postgres' ? sql<string | null>`(labels::jsonb ->> ${r.key})` : sql<string | null>`json_extract(labels, ${`$."${r.key}"`})`;
    switch (r.op) {
      case 'exists':
        return sql<boolean>`${value} is not null`;
      case 'notexists':
        return sql<boolean>`${value} is null`;
      case 'in':
        return sql<boolean>`${value} in (${sql.join(r.values)})`;
      case 'notin':
        return sql<boolean>`(${value} is null or ${value} not in (${sql.join(r.values)}))`;
    }
  }

  async insertEnrolled(m: NewMachine, now: string): Promise<Machine | undefined> {
    const facts = { ...hardwareFacts(m.hardware), mac_address: m.mac_address };
    try {
      const inserted = await this.db
        .insertInto('machines')
        .values({
          service_tag: m.service_tag,
          status: 'enrolled',
          enrolled_at: now,
          updated_at: now,
          last_seen_at: now,
          ...facts,
          identity_mac: m.identity_mac,
          system_uuid: m.system_uuid,
          identity_conflict: m.identity_conflict === null ? null : JSON.stringify(m.identity_conflict),
          search_text: searchTextOf({ ...facts, service_tag: m.service_tag, hostname: null }),
        })
        .onConflict((oc) => oc.column('service_tag').doNothing())
        .returningAll()
        .executeTakeFirst();
      return inserted && toMachine(inserted);
    } catch (err) {
      throw identityTaken(err, m.service_tag);
    }
  }

  async refreshHardware(id: number, hardware: Hardware, now: string): Promise<Machine> {
    const updated = await this.db
      .updateTable('machines')
      .set({ ...hardwareFacts(hardware), last_seen_at: now, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await refreshSearchText(this.db, updated);
    return toMachine(updated);
  }

  async findIdentity(id: number): Promise<MachineIdentity | undefined> {
    const row = await this.db
      .selectFrom('machines')
      .select(['id', 'service_tag', 'mac_address', 'identity_mac', 'system_uuid', 'identity_conflict'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: Number(row.id),
      service_tag: row.service_tag,
      mac_address: row.mac_address,
      identity_mac: row.identity_mac,
      system_uuid: row.system_uuid,
      identity_conflict: row.identity_conflict === null ? null : (JSON.parse(row.identity_conflict) as IdentityConflict),
    };
  }

  async identityHolders(mac: string, uuid: string | null): Promise<IdentityHolder[]> {
    const rows = await this.db
      .selectFrom('machines')
      .select(['id', 'service_tag', 'identity_mac', 'system_uuid'])
      .where((eb) => (uuid === null ? eb('identity_mac', '=', mac) : eb.or([eb('identity_mac', '=', mac), eb('system_uuid', '=', uuid)])))
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: Number(r.id), service_tag: r.service_tag, mac: r.identity_mac === mac, uuid: uuid !== null && r.system_uuid === uuid }));
  }

  async findById(id: number): Promise<Machine | undefined> {
    const row = await this.db.selectFrom('machines').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toMachine(row);
  }

  async findByServiceTag(tag: string): Promise<Machine | undefined> {
    const row = await this.db.selectFrom('machines').selectAll().where('service_tag', '=', tag).executeTakeFirst();
    return row && toMachine(row);
  }

  /** The build whose image the machine boots, if any. */
  async imageBuildId(id: number): Promise<number | null> {
    const row = await this.db.selectFrom('machines').select('image_build_id').where('id', '=', id).executeTakeFirst();
    return row?.image_build_id ?? null;
  }

  /** The build each machine boots, by id, read a batch of ids a query. */
  async imageBuildIds(ids: readonly number[]): Promise<Map<number, number | null>> {
    const found = new Map<number, number | null>();
    for (let at = 0; at < ids.length; at += ID_BATCH) {
      const rows = await this.db
        .selectFrom('machines')
        .select(['id', 'image_build_id'])
        .where('id', 'in', ids.slice(at, at + ID_BATCH))
        .execute();
      for (const row of rows) found.set(Number(row.id), row.image_build_id === null ? null : Number(row.image_build_id));
    }
    return found;
  }

  /** The machines meeting `filter`'s conditions, as a query to select from. */
  private meeting(filter: MachineConditions) {
    let q = this.db.selectFrom('machines');
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.search) {
      const pattern = `%${filter.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q = q.where('search_text', 'like', sql<string>`${pattern} escape '\\'`);
    }
    if (filter.selector) for (const r of filter.selector.requirements) q = q.where(this.labelCondition(r));
    if (filter.profile !== undefined) q = q.where('profile', '=', filter.profile);
    if (filter.outOfDate !== undefined) {
      const stale = sql<boolean>`(desired_hash is not null and (built_hash is null or built_hash <> desired_hash))`;
      q = q.where(filter.outOfDate ? stale : sql<boolean>`not ${stale}`);
    }
    return q;
  }

  async scan(conditions: MachineConditions, afterId: number, limit: number): Promise<Machine[]> {
    const rows = await this.meeting(conditions).selectAll().where('id', '>', afterId).orderBy('id').limit(limit).execute();
    return rows.map(toMachine);
  }

  async list(filter: MachineFilter): Promise<{ items: Machine[]; total: number }> {
    const q = this.meeting(filter);
    const sort = filter.sort ?? 'id';
    const order = filter.order ?? 'asc';
    const byId = q.select('id').orderBy(sort, order).orderBy('id', order).limit(filter.limit).offset(filter.offset);
    const readRows = (ids: typeof byId | number[]) =>
      this.db.selectFrom('machines').selectAll().where('id', 'in', ids).orderBy(sort, order).orderBy('id', order).execute();
    if (!filter.search) {
      // The page is picked by id and only its rows are read whole: skipping `offset` whole rows
      // (hardware JSON included) made PostgreSQL sort them on disk, 13 ms for a page at offset 9,900.
      const [rows, count] = await Promise.all([
        readRows(byId),
        q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
      ]);
      return { items: rows.map(toMachine), total: Number(count.n) };
    }
    // A search scans every machine: one pass finds the page and counts the matches (a window count)
    // instead of two; 25 ms -> 6 ms on 10,000 machines in SQLite.
    const page = await byId.select((eb) => eb.fn.countAll<string | number>().over().as('total')).execute();
    if (page.length === 0) {
      if (filter.offset === 0) return { items: [], total: 0 };
      const count = await q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
      return { items: [], total: Number(count.n) };
    }
    const rows = await readRows(page.map((r) => r.id));
    return { items: rows.map(toMachine), total: Number(page[0]!.total) };
  }

  /** Machines per status, for the dashboard and metrics. */
  countByStatus(): Promise<Record<string, number>> {
    return countByStatus(this.db, 'machines');
  }

  async update(id: number, patch: MachinePatch, now: string): Promise<Machine> {
    const { identity_conflict: conflict, labels, nixos_files: _files, booted_health: health, ...rest } = patch;
    const set: Updateable<MachinesTable> = {
      ...rest,
      // What the machine boots was built from that build's configuration.
      ...(patch.image_build_id !== undefined
        ? {
            built_hash:
              patch.image_build_id === null
                ? null
                : (sql<string | null>`(select config_hash from builds where builds.id = ${patch.image_build_id})` as unknown as string),
          }
        : {}),
      ...(labels !== undefined ? { labels: JSON.stringify(labels) } : {}),
      ...(health !== undefined ? { booted_health: health === null ? null : JSON.stringify(health) } : {}),
      ...(conflict !== undefined ? { identity_conflict: conflict === null ? null : JSON.stringify(conflict) } : {}),
      ...configColumns(patch),
      updated_at: now,
    };
    let row: Selectable<MachinesTable>;
    try {
      row = await this.db.updateTable('machines').set(set).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    } catch (err) {
      if (isHostnameViolation(err)) throw new DuplicateKeyError(`hostname ${patch.hostname ?? ''} is taken by another machine`, { cause: err });
      throw identityTaken(err, `machine ${id}`);
    }
    await refreshSearchText(this.db, row);
    return toMachine(row);
  }

  async claimHostname(id: number, hostname: string, now: string): Promise<boolean> {
    const write = () => this.db.updateTable('machines').set({ hostname, updated_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    if (!this.inTransaction) {
      try {
        await refreshSearchText(this.db, await write());
        return true;
      } catch (err) {
        if (isHostnameViolation(err)) return false;
        throw err;
      }
    }
    // A refused write must not end the transaction (PostgreSQL aborts it): try it inside a savepoint.
    await sql`savepoint metal_hostname`.execute(this.db);
    try {
      const row = await write();
      await sql`release savepoint metal_hostname`.execute(this.db);
      await refreshSearchText(this.db, row);
      return true;
    } catch (err) {
      await sql`rollback to savepoint metal_hostname`.execute(this.db);
      await sql`release savepoint metal_hostname`.execute(this.db);
      if (isHostnameViolation(err)) return false;
      throw err;
    }
  }

  async hostnamesLike(prefix: string, suffix: string): Promise<string[]> {
    const escape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
    const pattern = `${escape(prefix)}%${escape(suffix)}`;
    const rows = await this.db
      .selectFrom('machines')
      .select('hostname')
      .where('hostname', 'like', sql<string>`${pattern} escape '\\'`)
      .execute();
    return rows.map((r) => r.hostname).filter((h): h is string => h !== null && h.startsWith(prefix) && h.endsWith(suffix));
  }

  async delete(id: number): Promise<void> {
    await this.db.deleteFrom('machines').where('id', '=', id).execute();
  }

  async findBootTarget(key: BootKey, value: string): Promise<BootTarget | undefined> {
    const row = await this.db
      .selectFrom('machines')
      .select(['id', 'service_tag', 'status', 'image_build_id', 'system_uuid', 'identity_conflict'])
      .where(key === 'mac_address' ? 'identity_mac' : key, '=', value)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: Number(row.id),
      serviceTag: row.service_tag,
      status: row.status,
      imageBuildId: row.image_build_id === null ? null : Number(row.image_build_id),
      systemUuid: row.system_uuid,
      identityConflict: row.identity_conflict !== null,
    };
  }

  summaryRows(): Promise<SummaryRow[]> {
    return this.db.selectFrom('machines').select(['status', 'manufacturer', 'model', 'hardware']).execute();
  }

  /** Sets last_seen_at on many machines at once (boot-script requests are coalesced into this). */
  async touchLastSeen(ids: number[], now: string): Promise<void> {
    if (ids.length === 0) return;
    if (this.sideWriter) {
      // One statement whatever the number of ids, so the worker prepares it once.
      await this.sideWriter.run('update machines set last_seen_at = ? where id in (select value from json_each(?))', [now, JSON.stringify(ids)]);
      return;
    }
    await this.db.updateTable('machines').set({ last_seen_at: now }).where('id', 'in', ids).execute();
  }

  async setDesiredHashes(hashes: ReadonlyArray<{ id: number; hash: string | null }>, now: string): Promise<number> {
    // One statement a batch (a nixpkgs pin change rewrites every machine's hash): the new hashes as a
    // table of their own, and only the rows whose hash differs are written. Casts give PostgreSQL
    // the parameters' types; IS DISTINCT FROM is null-safe on both databases. A statement must find
    // its machines by id: a correlated `where exists` read every machine each statement (100,000
    // machines took 26 s, growing with the square of the fleet), and SQLite joins `update … from`
    // by reading every machine too unless `id in (…)` names them (15.5 s against 2.6 s; PostgreSQL
    // 5 s either way). Batches stay well inside both databases' limits on bound parameters.
    let changed = 0;
    for (let i = 0; i < hashes.length; i += DESIRED_HASH_BATCH) {
      const result = await desiredHashesUpdate(hashes.slice(i, i + DESIRED_HASH_BATCH), now).execute(this.db);
      changed += Number(result.numAffectedRows ?? 0);
    }
    return changed;
  }

  async pointingAt(buildId: number): Promise<number[]> {
    const rows = await this.db.selectFrom('machines').select('id').where('image_build_id', '=', buildId).execute();
    return rows.map((r) => Number(r.id));
  }

  async rebootRequestedAt(id: number): Promise<string | null> {
    const row = await this.db.selectFrom('machines').select('reboot_requested_at').where('id', '=', id).executeTakeFirst();
    return row?.reboot_requested_at ?? null;
  }
}

/** The statement that writes one batch of desired hashes (see setDesiredHashes); exported for its plan's test. */
export function desiredHashesUpdate(hashes: ReadonlyArray<{ id: number; hash: string | null }>, now: string) {
  const rows = sql.join(hashes.map((h) => sql`(cast(${h.id} as integer), cast(${h.hash} as text))`));
  return sql`with v(id, hash) as (values ${rows})
    update machines set desired_hash = v.hash, updated_at = ${now}
    from v where machines.id = v.id and machines.id in (select v.id from v) and v.hash is distinct from machines.desired_hash`;
}

type SearchFacts = Pick<Selectable<MachinesTable>, 'service_tag' | 'hostname' | 'mac_address' | 'manufacturer' | 'model' | 'hardware'>;

/**
 * What a search matches: tag, hostname, MAC, vendor and model, then the switches and ports its NICs
 * are cabled to (LLDP), lower-cased, in one string.
 */
export function searchTextOf(m: SearchFacts): string {
  const text = [m.service_tag, m.hostname ?? '', m.mac_address, m.manufacturer ?? '', m.model ?? ''].join(' ').toLowerCase();
  const cabling = cablingSearchText(parseHardware(m.hardware));
  return cabling === '' ? text : `${text} ${cabling}`;
}

function parseHardware(json: string): Hardware {
  try {
    const parsed: unknown = JSON.parse(json);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Hardware) : {};
  } catch {
    return {};
  }
}

/** Rewrites a machine's search_text after a change of any field it is made of. */
async function refreshSearchText(db: Kysely<Schema>, row: Selectable<MachinesTable>): Promise<void> {
  const text = searchTextOf(row);
  if (text !== row.search_text) await db.updateTable('machines').set({ search_text: text }).where('id', '=', row.id).execute();
}

/** What is copied out of the hardware document into columns. */
function hardwareFacts(hardware: Hardware) {
  return { hardware: JSON.stringify(hardware), manufacturer: str(hardware.manufacturer), model: str(hardware.model) };
}

/** A violation of the unique index on hostname (migration 0013). */
function isHostnameViolation(err: unknown): boolean {
  if (!isUniqueViolation(err)) return false;
  const e = err as { constraint?: unknown; message?: unknown };
  return e.constraint === 'machines_hostname_unique' || (typeof e.message === 'string' && e.message.includes('machines.hostname'));
}

/** A unique-index violation on identity_mac or system_uuid, as the core's DuplicateKeyError. */
function identityTaken(err: unknown, what: string): unknown {
  if (isUniqueViolation(err)) return new DuplicateKeyError(`${what}: its MAC or UUID was taken by another machine meanwhile`, { cause: err });
  return err;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/**
 * The configuration columns a patch writes: the whole map sets both (the entry's text in
 * `nixos_config`); the entry text alone is a one-file configuration (`nixos_files` null).
 */
function configColumns(patch: MachinePatch): Pick<Updateable<MachinesTable>, 'nixos_config' | 'nixos_files'> {
  if (patch.nixos_files !== undefined) {
    const files = patch.nixos_files;
    return files === null ? { nixos_config: null, nixos_files: null } : { nixos_config: files[ENTRY_FILE] ?? null, nixos_files: JSON.stringify(files) };
  }
  return patch.nixos_config !== undefined ? { nixos_files: null } : {};
}
