import type { Kysely, Selectable } from 'kysely';
import { DuplicateKeyError, type NewRollout, type RolloutPatch, type RolloutStore } from '../core/ports.ts';
import { ACTIVE_ROLLOUT_STATES, isRolloutActive, type Rollout, type RolloutMachine, type RolloutMachineState, type RolloutState } from '../core/rollout-machine.ts';
import type { BuildMode, RebootMethod } from '../core/rollout-machine.ts';
import type { BootHealth } from '../core/types.ts';
import { parseJson } from './rows.ts';
import type { RolloutMachinesTable, RolloutsTable, Schema } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

/** The rollouts and rollout_machines tables (migration 0014). */
export class SqlRolloutStore implements RolloutStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async create(r: NewRollout, now: string): Promise<Rollout> {
    const { machines, build, ...settings } = r;
    const row = await this.db
      .insertInto('rollouts')
      .values({ ...settings, build_mode: build, wave: 0, resume_state: null, message: null, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
    const id = Number(row.id);
    const active = isRolloutActive(r.state);
    if (machines.length > 0) {
      try {
        // In chunks: PostgreSQL and SQLite bound the parameters of one statement.
        for (let i = 0; i < machines.length; i += 200) {
          await this.db
            .insertInto('rollout_machines')
            .values(machines.slice(i, i + 200).map((m) => ({ ...m, rollout_id: id, message: null, updated_at: now, lock_machine_id: active ? m.machine_id : null })))
            .execute();
        }
      } catch (err) {
        if (isUniqueViolation(err)) throw new DuplicateKeyError('a machine of this rollout is in another active rollout', { cause: err });
        throw err;
      }
    }
    return (await this.get(id))!;
  }

  async get(id: number): Promise<Rollout | undefined> {
    const row = await this.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const machines = await this.db.selectFrom('rollout_machines').selectAll().where('rollout_id', '=', id).orderBy('wave').orderBy('machine_id').execute();
    return toRollout(row, machines);
  }

  async list(limit: number, offset: number): Promise<{ items: Rollout[]; total: number }> {
    const [rows, count] = await Promise.all([
      this.db.selectFrom('rollouts').selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute(),
      this.db.selectFrom('rollouts').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const ids = rows.map((r) => Number(r.id));
    const machines = ids.length === 0 ? [] : await this.db.selectFrom('rollout_machines').selectAll().where('rollout_id', 'in', ids).orderBy('wave').orderBy('machine_id').execute();
    return { items: rows.map((r) => toRollout(r, machines.filter((m) => Number(m.rollout_id) === Number(r.id)))), total: Number(count.n) };
  }

  async activeFor(machineIds: number[]): Promise<Array<{ rollout_id: number; machine_id: number }>> {
    if (machineIds.length === 0) return [];
    const found: Array<{ rollout_id: number; machine_id: number }> = [];
    for (let i = 0; i < machineIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('rollout_machines')
        .select(['rollout_id', 'machine_id'])
        .where('lock_machine_id', 'in', machineIds.slice(i, i + 500))
        .execute();
      found.push(...rows.map((r) => ({ rollout_id: Number(r.rollout_id), machine_id: Number(r.machine_id) })));
    }
    return found.sort((a, b) => a.rollout_id - b.rollout_id || a.machine_id - b.machine_id);
  }

  async activeBuildIds(): Promise<number[]> {
    const rows = await this.db
      .selectFrom('rollout_machines')
      .innerJoin('rollouts', 'rollouts.id', 'rollout_machines.rollout_id')
      .select(['rollout_machines.from_build_id', 'rollout_machines.to_build_id'])
      .where('rollouts.state', 'in', [...ACTIVE_ROLLOUT_STATES])
      .execute();
    const ids = new Set<number>();
    for (const r of rows) {
      if (r.from_build_id !== null) ids.add(Number(r.from_build_id));
      if (r.to_build_id !== null) ids.add(Number(r.to_build_id));
    }
    return [...ids].sort((a, b) => a - b);
  }

  async update(id: number, version: number, patch: RolloutPatch, now: string): Promise<boolean> {
    const result = await this.db
      .updateTable('rollouts')
      .set({ ...patch, version: version + 1, updated_at: now })
      .where('id', '=', id)
      .where('version', '=', version)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) return false;
    if (patch.state !== undefined && !isRolloutActive(patch.state)) {
      await this.db.updateTable('rollout_machines').set({ lock_machine_id: null }).where('rollout_id', '=', id).execute();
    }
    return true;
  }

  async updateMachine(id: number, m: RolloutMachine): Promise<void> {
    await this.db
      .updateTable('rollout_machines')
      .set({
        to_build_id: m.to_build_id,
        state: m.state,
        message: m.message,
        started_at: m.started_at,
        deadline_at: m.deadline_at,
        finished_at: m.finished_at,
        updated_at: m.updated_at,
        health: m.health ? JSON.stringify(m.health) : null,
      })
      .where('rollout_id', '=', id)
      .where('machine_id', '=', m.machine_id)
      .execute();
  }

  async claimLeases(owner: string, leaseUntil: string, now: string): Promise<number[]> {
    const rows = await this.db
      .updateTable('rollouts')
      .set({ lease_owner: owner, lease_expires_at: leaseUntil })
      .where('state', 'in', [...ACTIVE_ROLLOUT_STATES])
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_expires_at', '<', now)]))
      .returning('id')
      .execute();
    return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
  }

  async releaseLeases(owner: string): Promise<void> {
    await this.db.updateTable('rollouts').set({ lease_owner: null, lease_expires_at: null }).where('lease_owner', '=', owner).execute();
  }
}

function toRollout(row: Selectable<RolloutsTable>, machines: Array<Selectable<RolloutMachinesTable>>): Rollout {
  return {
    id: Number(row.id),
    selector: row.selector,
    build: row.build_mode as BuildMode,
    canary: Number(row.canary),
    batch_size: Number(row.batch_size),
    max_unavailable: Number(row.max_unavailable),
    max_failures: Number(row.max_failures),
    health_timeout_seconds: Number(row.health_timeout_seconds),
    reboot: row.reboot as RebootMethod,
    state: row.state as RolloutState,
    wave: Number(row.wave),
    waves: Number(row.waves),
    version: Number(row.version),
    resume_state: row.resume_state as Rollout['resume_state'],
    message: row.message,
    created_by: row.created_by,
    created_at: row.created_at,
    updated_at: row.updated_at,
    finished_at: row.finished_at,
    machines: machines.map(toRolloutMachine),
  };
}

function toRolloutMachine(m: Selectable<RolloutMachinesTable>): RolloutMachine {
  return {
    machine_id: Number(m.machine_id),
    service_tag: m.service_tag,
    wave: Number(m.wave),
    from_build_id: m.from_build_id === null ? null : Number(m.from_build_id),
    to_build_id: m.to_build_id === null ? null : Number(m.to_build_id),
    state: m.state as RolloutMachineState,
    message: m.message,
    started_at: m.started_at,
    deadline_at: m.deadline_at,
    finished_at: m.finished_at,
    updated_at: m.updated_at,
    ...(m.health ? { health: parseJson(m.health) as BootHealth } : {}),
  };
}
