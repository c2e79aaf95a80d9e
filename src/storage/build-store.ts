import { sql, type Kysely, type Selectable } from 'kysely';
import type { BuildStatus } from '../core/lifecycle.ts';
import { DuplicateKeyError, type BuildBootFacts, type BuildFields, type BuildQueueStats, type BuildRecord, type BuildStore, type BuildSummary, type NewBuild } from '../core/ports.ts';
import type { Build } from '../core/types.ts';
import type { Dialect } from './migrations/context.ts';
import { countByStatus } from './count-by-status.ts';
import { parseJson, toBuild } from './rows.ts';
import type { BuildsTable, Schema } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

/** The builds table, claims and leases included. */
export class SqlBuildStore implements BuildStore {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly dialect: Dialect,
    /** True when bound to a transaction: `findRecord` then locks the row on PostgreSQL. */
    private readonly inTransaction = false,
  ) {}

  async create(b: NewBuild, now: string): Promise<Build> {
    const { hold, rollout_id, ...fields } = b;
    try {
      const row = await this.db
        .insertInto('builds')
        .values({
          ...fields,
          config_files: fields.config_files ? JSON.stringify(fields.config_files) : null,
          hold: hold ? 1 : 0,
          rollout_id: rollout_id ?? null,
          profile_name: fields.profile_name ?? null,
          profile_config: fields.profile_config ?? null,
          kernel_params: JSON.stringify(fields.kernel_params ?? []),
          health_check: fields.health_check ?? null,
          skip_boot_check: fields.skip_boot_check ? 1 : 0,
          config_hash: fields.config_hash ?? null,
          status: 'pending',
          attempts: 0,
          log_output: '',
          created_at: now,
          updated_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBuild(row);
    } catch (err) {
      // The unique index on active builds makes a concurrent second one fail.
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`machine ${b.service_tag} already has a build pending or running`, { cause: err });
      throw err;
    }
  }

  async findById(id: number): Promise<Build | undefined> {
    const row = await this.db.selectFrom('builds').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toBuild(row);
  }

  async findRecord(id: number): Promise<BuildRecord | undefined> {
    const q = this.db.selectFrom('builds').selectAll().where('id', '=', id);
    const row = await (this.inTransaction && this.dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
    return row && toBuildRecord(row);
  }

  async findActiveForMachine(machineId: number): Promise<Build | undefined> {
    const row = await this.db
      .selectFrom('builds')
      .selectAll()
      .where('machine_id', '=', machineId)
      .where('status', 'in', ['pending', 'building'])
      .executeTakeFirst();
    return row && toBuild(row);
  }

  async listForMachine(machineId: number, limit = 50, offset = 0): Promise<{ items: Build[]; total: number }> {
    const q = this.db.selectFrom('builds').where('machine_id', '=', machineId);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map((r) => ({ ...toBuild(r), log_output: '' })), total: Number(count.n) };
  }

  async statusesForMachine(machineId: number): Promise<Array<{ id: number; status: BuildStatus }>> {
    const rows = await this.db.selectFrom('builds').select(['id', 'status']).where('machine_id', '=', machineId).execute();
    return rows.map((r) => ({ id: Number(r.id), status: r.status as BuildStatus }));
  }

  async recent(limit: number, machineId?: number): Promise<BuildSummary[]> {
    let q = this.db
      .selectFrom('builds')
      .select(['id', 'status', 'service_tag', 'hostname', 'error', 'created_at', 'started_at', 'completed_at', 'nixpkgs_revision', 'nixpkgs_version']);
    if (machineId !== undefined) q = q.where('machine_id', '=', machineId);
    const rows = await q.orderBy('id', 'desc').limit(limit).execute();
    return rows.map((r) => ({ ...r, id: Number(r.id) }));
  }

  countByStatus(): Promise<Record<string, number>> {
    return countByStatus(this.db, 'builds');
  }

  async queueStats(now: string): Promise<BuildQueueStats> {
    const [pending, leases] = await Promise.all([
      this.db
        .selectFrom('builds')
        .select([(eb) => eb.fn.countAll<string | number>().as('n'), (eb) => eb.fn.min('created_at').as('oldest')])
        .where('status', '=', 'pending')
        .executeTakeFirstOrThrow(),
      this.db
        .selectFrom('builds')
        .select(['lease_owner', (eb) => eb.fn.max('lease_expires_at').as('until')])
        .where('status', '=', 'building')
        .where('lease_owner', 'is not', null)
        .groupBy('lease_owner')
        .execute(),
    ]);
    const live = leases.filter((l) => l.until !== null && String(l.until) >= now).length;
    return {
      pending: Number(pending.n),
      oldestPendingAt: pending.oldest === null || pending.oldest === undefined ? null : String(pending.oldest),
      liveBuilders: live,
      lostBuilders: leases.length - live,
    };
  }

  async transition(id: number, from: readonly BuildStatus[], to: BuildStatus, fields: BuildFields, now: string): Promise<Build | undefined> {
    const row = await this.db
      .updateTable('builds')
      .set({ ...fields, status: to, updated_at: now })
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
    return row && toBuild(row);
  }

  async claimNext(owner: string, leaseUntil: string, now: string): Promise<BuildRecord | undefined> {
    const row = await this.db
      .updateTable('builds')
      .set({
        status: 'building',
        lease_owner: owner,
        lease_expires_at: leaseUntil,
        attempts: sql`attempts + 1`,
        started_at: sql`coalesce(started_at, ${now})`,
        updated_at: now,
      })
      .where('status', '=', 'pending')
      .where('id', '=', (eb) => {
        const next = eb.selectFrom('builds').select('id').where('status', '=', 'pending').orderBy('id').limit(1);
        // PostgreSQL: concurrent claimers skip each other's row; SQLite runs one writer at a time anyway.
        return this.dialect === 'postgres' ? next.forUpdate().skipLocked() : next;
      })
      .returningAll()
      .executeTakeFirst();
    return row && toBuildRecord(row);
  }

  async renewLease(id: number, owner: string, leaseUntil: string): Promise<boolean> {
    const result = await this.db
      .updateTable('builds')
      .set({ lease_expires_at: leaseUntil })
      .where('id', '=', id)
      .where('status', '=', 'building')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async appendLog(id: number, text: string, now: string, owner?: string): Promise<void> {
    if (text === '') return;
    let q = this.db.updateTable('builds').set({ log_output: sql`log_output || ${text}`, updated_at: now }).where('id', '=', id);
    if (owner !== undefined) q = q.where('status', '=', 'building').where('lease_owner', '=', owner);
    await q.execute();
  }

  async prependLog(id: number, text: string): Promise<void> {
    await this.db.updateTable('builds').set({ log_output: sql`${text} || log_output` }).where('id', '=', id).execute();
  }

  async expiredLeases(now: string, limit: number): Promise<number[]> {
    const rows = await this.db
      .selectFrom('builds')
      .select('id')
      .where('status', '=', 'building')
      .where('lease_expires_at', '<', now)
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => Number(r.id));
  }

  async findPublishedStorePath(storePath: string, exceptId: number): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('builds')
      .select('id')
      .where('store_path', '=', storePath)
      .where('status', '=', 'success')
      .where('id', '!=', exceptId)
      .orderBy('id', 'desc')
      .executeTakeFirst();
    return row ? Number(row.id) : undefined;
  }

  async bootFacts(id: number): Promise<BuildBootFacts | undefined> {
    const row = await this.db.selectFrom('builds').select(['machine_id', 'boot_token', 'image_key']).where('id', '=', id).executeTakeFirst();
    return row && { machineId: Number(row.machine_id), bootToken: row.boot_token, imageKey: row.image_key };
  }

  async advanceBootMarker(id: number, marker: string): Promise<boolean> {
    const result = await this.db
      .updateTable('builds')
      .set({ boot_nonce: marker })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('boot_nonce', 'is', null), eb('boot_nonce', '<', marker)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async publishedImages(): Promise<Array<{ id: number; machine_id: number }>> {
    const rows = await this.db
      .selectFrom('builds')
      .select(['id', 'machine_id'])
      .where('status', '=', 'success')
      .where('image_swept_at', 'is', null)
      .orderBy('machine_id')
      .orderBy('id', 'desc')
      .execute();
    return rows.map((r) => ({ id: Number(r.id), machine_id: Number(r.machine_id) }));
  }

  async sweptAmong(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('builds').select('id').where('id', 'in', ids).where('image_swept_at', 'is not', null).execute();
    return rows.map((r) => Number(r.id));
  }

  async markImageSwept(id: number, now: string): Promise<boolean> {
    const result = await this.db
      .updateTable('builds')
      .set({ image_swept_at: now })
      .where('id', '=', id)
      .where('status', '=', 'success')
      .where('image_swept_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async bootMarker(id: number): Promise<string | null> {
    const row = await this.db.selectFrom('builds').select('boot_nonce').where('id', '=', id).executeTakeFirst();
    return row?.boot_nonce ?? null;
  }

  async statusesOf(ids: number[]): Promise<Array<{ id: number; status: BuildStatus }>> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('builds').select(['id', 'status']).where('id', 'in', ids).execute();
    return rows.map((r) => ({ id: Number(r.id), status: r.status as BuildStatus }));
  }

  async findIdByImageKey(imageKey: string): Promise<number | undefined> {
    const row = await this.db.selectFrom('builds').select('id').where('image_key', '=', imageKey).executeTakeFirst();
    return row ? Number(row.id) : undefined;
  }
}

function toBuildRecord(row: Selectable<BuildsTable>): BuildRecord {
  return {
    ...toBuild(row),
    service_tag: row.service_tag,
    lease_owner: row.lease_owner,
    lease_expires_at: row.lease_expires_at,
    boot_token: row.boot_token,
    image_key: row.image_key,
    store_path: row.store_path,
    profile_config: row.profile_config,
    kernel_params: kernelParamsOf(row.kernel_params),
    skip_boot_check: Boolean(Number(row.skip_boot_check)),
  };
}

function kernelParamsOf(text: string): string[] {
  const parsed = parseJson(text);
  return Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === 'string') : [];
}
