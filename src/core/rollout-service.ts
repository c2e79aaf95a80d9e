import { ConflictError, InvalidInputError, NotFoundError, UnprocessableError } from './errors.ts';
import { machinePages } from './machine-pages.ts';
import { parseSelector } from './labels.ts';
import type { Notifier } from './notifier.ts';
import { DuplicateKeyError, type Storage } from './ports.ts';
import { isRolloutActive, planWaves, stepRollout, type RolloutAction, type Rollout, type RolloutInput, type RolloutSettings } from './rollout-machine.ts';
import { nowIso, type Actor, type Machine } from './types.ts';

/** What `POST /api/v1/rollouts` asks for; unset fields take the defaults below. */
export type RolloutRequest = Pick<RolloutSettings, 'selector'> & Partial<Omit<RolloutSettings, 'selector'>>;

export const ROLLOUT_DEFAULTS: Omit<RolloutSettings, 'selector'> = {
  build: 'missing',
  canary: 1,
  batch_size: 5,
  max_unavailable: 0,
  max_failures: 0,
  health_timeout_seconds: 600,
  reboot: 'agent',
};

/** Most machines one rollout may hold. */
export const MAX_ROLLOUT_MACHINES = 10_000;

/**
 * Whether a machine needs a new build: it is out of date, i.e. it has no image, or the build it boots
 * was made from another effective configuration (profile, own files, hostname, nixpkgs pin) than the
 * one it has now (core/config-hash.ts). The one place a rollout decides this.
 */
export function needsBuild(machine: Pick<Machine, 'out_of_date'>): boolean {
  return machine.out_of_date;
}

/** Runs the side effects of a rollout step (the engine); the service uses it for the actions of API calls. */
export interface RolloutActuator {
  perform(rollout: Rollout, actions: RolloutAction[]): Promise<void>;
}

/**
 * Rollouts as the API sees them: starting one over the machines a selector picks (refused when a
 * machine is in another active rollout), reading them, and pausing, resuming or cancelling them. The
 * engine (core/rollout-engine.ts) drives them.
 */
export class RolloutService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly actuator: RolloutActuator,
  ) {}

  async start(request: RolloutRequest, actor: Actor): Promise<Rollout> {
    const settings: RolloutSettings = { ...ROLLOUT_DEFAULTS, ...stripUndefined(request), selector: request.selector };
    const selector = parseSelector(settings.selector);
    if (selector.requirements.length === 0) throw new InvalidInputError('selector must name at least one label requirement, e.g. role=web', { field: 'selector' });
    if (settings.batch_size < 1) throw new InvalidInputError('batch_size must be at least 1', { field: 'batch_size' });
    const machines: Machine[] = [];
    for await (const page of machinePages(this.storage.machines, { selector })) {
      machines.push(...page);
      if (machines.length > MAX_ROLLOUT_MACHINES) break;
    }
    if (machines.length === 0) throw new UnprocessableError(`selector ${settings.selector} matches no machine`);
    if (machines.length > MAX_ROLLOUT_MACHINES) throw new UnprocessableError(`selector ${settings.selector} matches more than ${MAX_ROLLOUT_MACHINES} machines; narrow it`);
    const nameless = machines.filter((m) => !m.hostname).map((m) => m.service_tag);
    if (nameless.length > 0) throw new UnprocessableError(`machines without a hostname cannot be built: ${listOf(nameless)}`);
    await this.refuseOverlap(machines.map((m) => m.id));

    const booting = await this.storage.machines.imageBuildIds(machines.map((m) => m.id));
    const planned = machines.map((machine) => ({ machine, from: booting.get(machine.id) ?? null, build: settings.build === 'always' || needsBuild(machine) }));
    const waves = planWaves(planned.filter((p) => p.build).length, settings);
    const total = Math.max(0, ...waves);
    let created: Rollout;
    try {
      created = await this.storage.transaction(async (tx) => {
        const rollout = await tx.rollouts.create(
          {
            ...settings,
            state: 'building',
            waves: total,
            created_by: actorName(actor),
            machines: planned.map((p) => ({
              machine_id: p.machine.id,
              service_tag: p.machine.service_tag,
              wave: p.build ? waves.shift()! : 0,
              from_build_id: p.from,
              to_build_id: null,
              state: p.build ? 'building' : 'unchanged',
            })),
          },
          nowIso(),
        );
        await tx.events.record({
          kind: 'rollout.started',
          actor,
          message: `rollout ${rollout.id} started over ${settings.selector}: ${planned.filter((p) => p.build).length} of ${planned.length} machines to build, ${total} waves`,
          data: { rollout_id: rollout.id, selector: settings.selector },
        });
        return rollout;
      });
    } catch (err) {
      // Another rollout took one of the machines meanwhile.
      if (err instanceof DuplicateKeyError) await this.refuseOverlap(machines.map((m) => m.id));
      throw err;
    }
    this.notifier.emit('rollout.updated', created.id);
    return created;
  }

  async get(id: number): Promise<Rollout> {
    const rollout = await this.storage.rollouts.get(id);
    if (!rollout) throw new NotFoundError(`rollout ${id} not found`);
    return rollout;
  }

  list(limit: number, offset: number): Promise<{ items: Rollout[]; total: number }> {
    return this.storage.rollouts.list(limit, offset);
  }

  /** Stops starting new waves; the wave in flight is still watched (and rolled back if it fails). */
  pause(id: number, actor: Actor): Promise<Rollout> {
    return this.control(id, { kind: 'pause' }, actor, (r) => (r.state === 'building' || r.state === 'rolling' ? undefined : `rollout ${id} is ${r.state}; only a building or rolling rollout can be paused`));
  }

  resume(id: number, actor: Actor): Promise<Rollout> {
    return this.control(id, { kind: 'resume' }, actor, (r) => (r.state === 'paused' ? undefined : `rollout ${id} is ${r.state}; only a paused rollout can be resumed`));
  }

  /** Stops the rollout where it is: running builds are cancelled, machines already moved stay moved. */
  cancel(id: number, actor: Actor): Promise<Rollout> {
    return this.control(id, { kind: 'cancel' }, actor, (r) => (isRolloutActive(r.state) ? undefined : `rollout ${id} is already ${r.state}`));
  }

  private async control(id: number, input: RolloutInput, actor: Actor, refusal: (r: Rollout) => string | undefined): Promise<Rollout> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.get(id);
      const refused = refusal(current);
      if (refused) throw new ConflictError(refused);
      const step = stepRollout(current, input, new Date());
      const written = await this.storage.transaction(async (tx) => {
        if (!(await writeRollout(tx, current, step.rollout))) return false;
        await tx.events.record({ kind: `rollout.${input.kind === 'cancel' ? 'cancelled' : input.kind === 'pause' ? 'paused' : 'resumed'}`, actor, message: `rollout ${id} ${step.rollout.state}`, data: { rollout_id: id } });
        return true;
      });
      if (!written) continue;
      await this.actuator.perform(step.rollout, step.actions);
      this.notifier.emit('rollout.updated', id);
      return this.get(id);
    }
    throw new ConflictError(`rollout ${id} keeps changing; try again`);
  }

  /** ConflictError naming the active rollout that holds any of these machines. */
  private async refuseOverlap(machineIds: number[]): Promise<void> {
    const held = await this.storage.rollouts.activeFor(machineIds);
    if (held.length === 0) return;
    const first = held[0]!.rollout_id;
    const rollout = await this.storage.rollouts.get(first);
    const tags = held.filter((h) => h.rollout_id === first).map((h) => rollout?.machines.find((m) => m.machine_id === h.machine_id)?.service_tag ?? `id:${h.machine_id}`);
    throw new ConflictError(`rollout ${first} (${rollout?.state ?? 'active'}, ${rollout?.selector ?? ''}) already holds ${listOf(tags)}; wait for it, or cancel it first`);
  }
}

/**
 * Writes a rollout after a step, if nobody wrote it since `before` was read: its fields, and each
 * machine that changed. False when another writer came first.
 */
export async function writeRollout(tx: Pick<Storage, 'rollouts'>, before: Rollout, after: Rollout): Promise<boolean> {
  const now = nowIso();
  const ok = await tx.rollouts.update(before.id, before.version, { state: after.state, wave: after.wave, resume_state: after.resume_state, message: after.message, finished_at: after.finished_at }, now);
  if (!ok) return false;
  for (const m of after.machines) {
    const old = before.machines.find((x) => x.machine_id === m.machine_id);
    if (JSON.stringify(old) !== JSON.stringify(m)) await tx.rollouts.updateMachine(before.id, m);
  }
  return true;
}

export function actorName(actor: Actor): string {
  return actor.kind === 'system' ? 'system' : `${actor.kind}:${actor.name}`;
}

function listOf(tags: string[]): string {
  return tags.length <= 5 ? tags.join(', ') : `${tags.slice(0, 5).join(', ')} and ${tags.length - 5} more`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
