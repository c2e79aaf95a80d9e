import type { Kysely, Updateable } from 'kysely';
import type { BuildStatus } from '../core/lifecycle.ts';
import type { Build } from '../core/types.ts';
import { toBuild } from './rows.ts';
import type { BuildsTable, Schema } from './schema.ts';

export interface NewBuild {
  machine_id: number;
  config: string;
  hostname: string;
  service_tag: string;
  boot_token: string;
}

/** The builds table. Claiming and leases live with the builder (src/builder/build-queue.ts). */
export class BuildStore {
  constructor(private readonly db: Kysely<Schema>) {}

  /** Inserts a pending build. The unique index on active builds makes a concurrent second one fail. */
  async create(b: NewBuild, now: string, db: Kysely<Schema> = this.db): Promise<Build> {
    const row = await db
      .insertInto('builds')
      .values({ ...b, status: 'pending', attempts: 0, log_output: '', created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toBuild(row);
  }

  async findById(id: number, db: Kysely<Schema> = this.db): Promise<Build | undefined> {
    const row = await db.selectFrom('builds').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toBuild(row);
  }

  /** The full row, including the boot token and store path, for the builder and boot server. */
  async findRowById(id: number, db: Kysely<Schema> = this.db) {
    return db.selectFrom('builds').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The machine's pending or running build, if any. */
  async findActiveForMachine(machineId: number, db: Kysely<Schema> = this.db): Promise<Build | undefined> {
    const row = await db
      .selectFrom('builds')
      .selectAll()
      .where('machine_id', '=', machineId)
      .where('status', 'in', ['pending', 'building'])
      .executeTakeFirst();
    return row && toBuild(row);
  }

  /** Newest first. `log_output` is left out of lists (it can be large); fetch one build for it. */
  async listForMachine(machineId: number, limit = 50, offset = 0): Promise<{ items: Build[]; total: number }> {
    const q = this.db.selectFrom('builds').where('machine_id', '=', machineId);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map((r) => ({ ...toBuild(r), log_output: '' })), total: Number(count.n) };
  }

  /**
   * Moves a build from one of `from` to `to` with the given extra fields, only if it is still in one
   * of `from` (compare-and-set). Returns the updated build, or undefined when it had moved on.
   */
  async transition(
    id: number,
    from: readonly BuildStatus[],
    to: BuildStatus,
    fields: Updateable<BuildsTable>,
    now: string,
    db: Kysely<Schema> = this.db,
  ): Promise<Build | undefined> {
    const row = await db
      .updateTable('builds')
      .set({ ...fields, status: to, updated_at: now })
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
    return row && toBuild(row);
  }
}
