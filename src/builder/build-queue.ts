import { sql, type Kysely, type Selectable } from 'kysely';
import { assertBuildTransition, assertMachineTransition, type BuildStatus } from '../core/lifecycle.ts';
import type { Actor } from '../core/types.ts';
import { nowIso } from '../core/types.ts';
import type { BuildsTable, Schema } from '../storage/schema.ts';
import type { Storage } from '../storage/storage.ts';

/** A claimed build as the builder sees it, boot token and all. */
export type BuildRow = Selectable<BuildsTable>;

/** How many times a build is started before a lost builder fails it instead of retrying it. */
export const MAX_ATTEMPTS = 2;

/** Largest log kept per build; later output is dropped with a note. */
export const MAX_LOG_BYTES = 4 * 1024 * 1024;

/** What a lease sweep did to one build. */
export interface SweepOutcome {
  id: number;
  action: 'retried' | 'failed';
}

/**
 * The build queue as seen by one builder: claiming with a lease, renewing it, appending to the log,
 * and finishing. Every change is a compare-and-set on status and lease owner, so a build that was
 * cancelled or taken over is never overwritten.
 */
export class BuildQueue {
  constructor(
    private readonly storage: Storage,
    /** e.g. `builder:build-01-4242` */
    readonly actor: Actor,
    readonly leaseMs: number,
  ) {}

  get owner(): string {
    return this.actor.name;
  }

  private leaseUntil(): string {
    return new Date(Date.now() + this.leaseMs).toISOString();
  }

  /** Takes the oldest pending build, or returns undefined when there is none. */
  async claimNext(): Promise<BuildRow | undefined> {
    const db = this.storage.db;
    const now = nowIso();
    const row = await db
      .updateTable('builds')
      .set({
        status: 'building',
        lease_owner: this.owner,
        lease_expires_at: this.leaseUntil(),
        attempts: sql`attempts + 1`,
        started_at: sql`coalesce(started_at, ${now})`,
        updated_at: now,
      })
      .where('status', '=', 'pending')
      .where('id', '=', (eb) => {
        const next = eb.selectFrom('builds').select('id').where('status', '=', 'pending').orderBy('id').limit(1);
        // PostgreSQL: concurrent claimers skip each other's row; SQLite runs one writer at a time anyway.
        return this.storage.dialect === 'postgres' ? next.forUpdate().skipLocked() : next;
      })
      .returningAll()
      .executeTakeFirst();
    if (!row) return undefined;
    await this.storage.events.record({
      kind: 'build.started',
      machineId: row.machine_id,
      buildId: row.id,
      actor: this.actor,
      message: `build ${row.id} started by ${this.owner} (attempt ${row.attempts})`,
    });
    return row;
  }

  /** Extends the lease; false when the build is no longer this builder's to run (cancelled, taken over). */
  async renew(id: number): Promise<boolean> {
    const result = await this.storage.db
      .updateTable('builds')
      .set({ lease_expires_at: this.leaseUntil() })
      .where('id', '=', id)
      .where('status', '=', 'building')
      .where('lease_owner', '=', this.owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Appends output to the log of a build this builder holds. */
  async appendLog(id: number, text: string): Promise<void> {
    if (text === '') return;
    await this.storage.db
      .updateTable('builds')
      .set({ log_output: sql`log_output || ${text}`, updated_at: nowIso() })
      .where('id', '=', id)
      .where('status', '=', 'building')
      .where('lease_owner', '=', this.owner)
      .execute();
  }

  /** An earlier successful build with this store path, whose files can be linked instead of copied. */
  async findPublishedStorePath(storePath: string, exceptId: number): Promise<number | undefined> {
    const row = await this.storage.db
      .selectFrom('builds')
      .select('id')
      .where('store_path', '=', storePath)
      .where('status', '=', 'success')
      .where('id', '!=', exceptId)
      .orderBy('id', 'desc')
      .executeTakeFirst();
    return row ? Number(row.id) : undefined;
  }

  /** The machine's currently published build, if any. */
  async imageBuildId(machineId: number): Promise<number | null> {
    return this.storage.machines.imageBuildId(machineId);
  }

  /**
   * Marks a build this builder holds `success` and its machine `ready` with this image, in one
   * transaction. False when the build was cancelled or taken over meanwhile (nothing is changed).
   */
  async succeed(id: number, fields: { storePath: string; artifactUrl: string; note: string }): Promise<boolean> {
    return this.inTransaction(async (trx) => {
      const row = await this.lockRow(trx, id);
      if (!row || row.status !== 'building' || row.lease_owner !== this.owner) return false;
      assertBuildTransition(row.status, 'success', `build ${id}`);
      const now = nowIso();
      const done = await this.storage.builds.transition(
        id,
        ['building'],
        'success',
        { store_path: fields.storePath, artifact_url: fields.artifactUrl, error: null, completed_at: now, lease_owner: null, lease_expires_at: null },
        now,
        trx,
      );
      if (!done) return false;
      const machine = await this.storage.machines.findById(row.machine_id, trx);
      if (machine) {
        assertMachineTransition(machine.status, 'ready', `build ${id}`);
        await this.storage.machines.update(machine.id, { status: 'ready', image_build_id: id }, now, trx);
      }
      await this.storage.events.record(
        { kind: 'build.succeeded', machineId: row.machine_id, buildId: id, actor: this.actor, message: fields.note, data: { store_path: fields.storePath } },
        trx,
      );
      return true;
    });
  }

  /**
   * Fails a build with a one-line reason, which also goes at the top of its log; the machine becomes
   * `failed` and keeps its published image. False when the build is no longer this builder's.
   */
  async fail(id: number, reason: string): Promise<boolean> {
    return this.inTransaction(async (trx) => {
      const row = await this.lockRow(trx, id);
      if (!row || row.status !== 'building' || row.lease_owner !== this.owner) return false;
      return this.failRow(trx, row, reason);
    });
  }

  private async failRow(trx: Kysely<Schema>, row: BuildRow, reason: string): Promise<boolean> {
    const line = oneLine(reason);
    const id = Number(row.id);
    assertBuildTransition(row.status as BuildStatus, 'failed', `build ${id}`);
    const now = nowIso();
    const done = await this.storage.builds.transition(
      id,
      [row.status as BuildStatus],
      'failed',
      { error: line, completed_at: now, lease_owner: null, lease_expires_at: null },
      now,
      trx,
    );
    if (!done) return false;
    await trx.updateTable('builds').set({ log_output: sql`${`error: ${line}\n`} || log_output` }).where('id', '=', id).execute();
    const machine = await this.storage.machines.findById(row.machine_id, trx);
    if (machine && machine.status === 'building') {
      assertMachineTransition(machine.status, 'failed', `build ${id}`);
      await this.storage.machines.update(machine.id, { status: 'failed' }, now, trx);
    }
    await this.storage.events.record(
      { kind: 'build.failed', machineId: row.machine_id, buildId: id, actor: this.actor, message: `build ${id} failed: ${line}` },
      trx,
    );
    return true;
  }

  /** Hands a build this builder holds back to the queue (graceful stop); the attempt is not counted. */
  async release(id: number, note: string): Promise<boolean> {
    return this.inTransaction(async (trx) => {
      const row = await this.lockRow(trx, id);
      if (!row || row.status !== 'building' || row.lease_owner !== this.owner) return false;
      const now = nowIso();
      const done = await this.storage.builds.transition(
        id,
        ['building'],
        'pending',
        { lease_owner: null, lease_expires_at: null, attempts: Math.max(0, Number(row.attempts) - 1) },
        now,
        trx,
      );
      if (!done) return false;
      await trx.updateTable('builds').set({ log_output: sql`log_output || ${`\n${note}\n`}` }).where('id', '=', id).execute();
      await this.storage.events.record(
        { kind: 'build.released', machineId: row.machine_id, buildId: id, actor: this.actor, message: note },
        trx,
      );
      return true;
    });
  }

  /**
   * Finds builds whose builder stopped renewing its lease: each is put back in the queue once, and
   * failed, saying the builder was lost, when it has used its attempts.
   */
  async sweepExpired(): Promise<SweepOutcome[]> {
    const now = nowIso();
    const expired = await this.storage.db
      .selectFrom('builds')
      .select(['id'])
      .where('status', '=', 'building')
      .where('lease_expires_at', '<', now)
      .orderBy('id')
      .limit(100)
      .execute();
    const outcomes: SweepOutcome[] = [];
    for (const { id } of expired) {
      const outcome = await this.inTransaction(async (trx): Promise<SweepOutcome | undefined> => {
        const row = await this.lockRow(trx, Number(id));
        if (!row || row.status !== 'building' || row.lease_expires_at === null || row.lease_expires_at >= nowIso()) return undefined;
        const lost = `builder ${row.lease_owner ?? '(unknown)'} was lost (its lease expired at ${row.lease_expires_at})`;
        if (Number(row.attempts) >= MAX_ATTEMPTS) {
          const failed = await this.failRow(trx, row, `${lost} after ${row.attempts} attempts`);
          return failed ? { id: Number(row.id), action: 'failed' } : undefined;
        }
        const at = nowIso();
        const done = await this.storage.builds.transition(row.id, ['building'], 'pending', { lease_owner: null, lease_expires_at: null }, at, trx);
        if (!done) return undefined;
        await trx.updateTable('builds').set({ log_output: sql`log_output || ${`\n${lost}; the build is tried again\n`}` }).where('id', '=', row.id).execute();
        await this.storage.events.record(
          { kind: 'build.retried', machineId: row.machine_id, buildId: row.id, actor: this.actor, message: `${lost}; build ${row.id} is tried again` },
          trx,
        );
        return { id: Number(row.id), action: 'retried' };
      });
      if (outcome) outcomes.push(outcome);
    }
    return outcomes;
  }

  private lockRow(trx: Kysely<Schema>, id: number): Promise<BuildRow | undefined> {
    const q = trx.selectFrom('builds').selectAll().where('id', '=', id);
    return (this.storage.dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
  }

  /** A transaction, retried when SQLite reports that another process wrote first. */
  private async inTransaction<T>(fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.storage.transaction(fn);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= 20 || typeof code !== 'string' || !code.startsWith('SQLITE_BUSY')) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
      }
    }
  }
}

/** The first line of a message, trimmed to a readable length. */
export function oneLine(text: string): string {
  const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? 'unknown error';
  return first.length > 500 ? `${first.slice(0, 497)}...` : first;
}
