import { RepeatedFailure } from './repeated-failure.ts';
import type { BuildLifecycle } from './build-lifecycle.ts';
import { DomainError } from './errors.ts';
import { isBuildFinished } from './lifecycle.ts';
import type { Logger } from './logger.ts';
import type { MachineImageService } from './machine-images.ts';
import type { Notifier } from './notifier.ts';
import type { Storage } from './ports.ts';
import { isRolloutActive, stepRollout, type Rollout, type RolloutAction, type RolloutInput } from './rollout-machine.ts';
import { writeRollout, type RolloutActuator } from './rollout-service.ts';
import type { Actor } from './types.ts';

/** Reboots a machine through its BMC (power cycle, next boot from the network). */
export interface PowerRebooter {
  powerCycle(machineId: number, actor: Actor): Promise<void>;
}

export interface RolloutEngineOptions {
  storage: Storage;
  notifier: Notifier;
  builds: Pick<BuildLifecycle, 'request' | 'cancel'>;
  machineImages: Pick<MachineImageService, 'pointAt'>;
  power: PowerRebooter;
  logger: Logger;
  /** This server's name as a lease owner, e.g. `api-01-4242`. */
  owner: string;
  /** How long a lease on a rollout holds unrenewed (default 30 s). */
  leaseMs?: number;
  /** Longest time between looks at the rollouts (default 1 s). */
  intervalMs?: number;
}

/**
 * Drives active rollouts. Each pass takes (or renews) a lease on every active rollout that no other
 * server holds, turns what the database says into inputs of the state machine (builds that ended,
 * booted reports, time), writes the outcome (compare-and-set on the rollout's version) and performs
 * the actions: requesting held builds, pointing machines at builds (the same path as a rollback),
 * rebooting them. Runs on a timer and on signals; a server that restarts, or another server after
 * the lease expired, takes a rollout up where the database left it.
 */
export class RolloutEngine implements RolloutActuator {
  private readonly leaseMs: number;
  private readonly driven = new Set<number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly wake = () => void this.pass();

  /** A database outage is logged once, then once a minute, not at every pass. */
  private readonly lookFailures: RepeatedFailure;

  constructor(private readonly o: RolloutEngineOptions) {
    this.leaseMs = o.leaseMs ?? 30_000;
    this.lookFailures = new RepeatedFailure(o.logger, 'rollouts: could not look at the rollouts; trying again shortly', 'rollouts: the rollouts are looked at again');
  }

  private get actor(): Actor {
    return { kind: 'system', name: `rollouts:${this.o.owner}` };
  }

  start(): void {
    this.timer = setInterval(this.wake, this.o.intervalMs ?? 1000);
    this.o.notifier.on('rollout.updated', this.wake);
    this.o.notifier.on('machine.updated', this.wake);
    this.o.notifier.on('build.updated', this.wake);
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.o.notifier.off('rollout.updated', this.wake);
    this.o.notifier.off('machine.updated', this.wake);
    this.o.notifier.off('build.updated', this.wake);
    await this.running;
    await this.o.storage.rollouts.releaseLeases(this.o.owner).catch(() => undefined);
  }

  /** One pass over every rollout this server may drive; concurrent calls fold into one more pass. */
  pass(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const now = new Date();
          const ids = await this.o.storage.rollouts.claimLeases(this.o.owner, new Date(now.getTime() + this.leaseMs).toISOString(), now.toISOString());
          for (const id of ids) {
            if (this.stopped) break;
            await this.drive(id).catch((err: unknown) => this.o.logger.warn({ err, rollout: id }, `rollouts: rollout ${id}: ${(err as Error).message}`));
          }
          this.lookFailures.succeeded();
        } catch (err) {
          this.lookFailures.failed(err);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Brings one rollout up to date with the facts. */
  private async drive(id: number): Promise<void> {
    let rollout = await this.o.storage.rollouts.get(id);
    if (!rollout || !isRolloutActive(rollout.state)) return;
    const before = rollout;
    const inputs: RolloutInput[] = [];
    if (!this.driven.has(id)) {
      // First time this process drives it: a restart, or a takeover from a server that went away.
      this.driven.add(id);
      inputs.push({ kind: 'restart' });
    }
    rollout = await this.requestMissingBuilds(rollout, inputs);
    inputs.push(...(await this.facts(rollout)), { kind: 'tick' });
    const actions: RolloutAction[] = [];
    let next = rollout;
    for (const input of inputs) {
      const step = stepRollout(next, input, new Date());
      next = step.rollout;
      actions.push(...step.actions);
    }
    // A build that could not be requested has no id (0 only matched it to its failure above).
    next = { ...next, machines: next.machines.map((m) => (m.to_build_id === 0 ? { ...m, to_build_id: null } : m)) };
    if (JSON.stringify(next) === JSON.stringify(before) && actions.length === 0) return;
    // Machines are pointed before the step is written, so what the rollout says was done is done even if
    // this server dies right after (pointing again is harmless); reboots and cancellations come after.
    await this.perform(next, actions.filter((a) => a.kind === 'point'));
    const written = await this.o.storage.transaction(async (tx) => {
      if (!(await writeRollout(tx, before, next))) return false;
      if (next.state !== before.state) {
        await tx.events.record({
          kind: `rollout.${next.state}`,
          actor: this.actor,
          message: `rollout ${id} ${next.state}${next.message ? `: ${next.message}` : ''}`,
          data: { rollout_id: id, wave: next.wave },
        });
      }
      return true;
    });
    // Someone else (an API call) wrote it meanwhile: the next pass starts from what they wrote.
    if (!written) return void (this.again = true);
    if (next.state !== before.state) this.o.logger.info({ rollout: id, state: next.state, wave: next.wave }, `rollouts: rollout ${id} ${next.state}${next.message ? `: ${next.message}` : ''}`);
    await this.perform(next, actions.filter((a) => a.kind !== 'point'));
    this.o.notifier.emit('rollout.updated', id);
  }

  /**
   * Machines still to build get their held build now (written before anything else, so a restart
   * never requests twice); a machine whose build cannot be requested counts as a failed build.
   */
  private async requestMissingBuilds(rollout: Rollout, inputs: RolloutInput[]): Promise<Rollout> {
    if (rollout.state !== 'building' && rollout.state !== 'paused') return rollout;
    let changed = false;
    const machines = [...rollout.machines];
    for (const [i, m] of machines.entries()) {
      if (m.state !== 'building' || m.to_build_id !== null) continue;
      try {
        const build = await this.o.builds.request(m.machine_id, this.actor, { hold: true, rolloutId: rollout.id });
        machines[i] = { ...m, to_build_id: build.id, updated_at: new Date().toISOString() };
        await this.o.storage.rollouts.updateMachine(rollout.id, machines[i]!);
        changed = true;
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        // Recorded as a failed build of a build id no one has: the state machine counts it.
        machines[i] = { ...m, to_build_id: 0 };
        inputs.push({ kind: 'build_finished', machineId: m.machine_id, buildId: 0, ok: false, reason: `its build could not be requested: ${err.message}` });
      }
    }
    return changed || inputs.length > 0 ? { ...rollout, machines } : rollout;
  }

  /** Builds that ended and booted reports, as inputs. */
  private async facts(rollout: Rollout): Promise<RolloutInput[]> {
    const inputs: RolloutInput[] = [];
    const building = rollout.machines.filter((m) => m.state === 'building' && m.to_build_id);
    if (building.length > 0) {
      const statuses = new Map((await this.o.storage.builds.statusesOf(building.map((m) => m.to_build_id!))).map((b) => [b.id, b.status]));
      for (const m of building) {
        const status = statuses.get(m.to_build_id!);
        if (status === undefined || !isBuildFinished(status)) continue;
        const error = status === 'success' ? undefined : ((await this.o.storage.builds.findById(m.to_build_id!))?.error ?? `build ${m.to_build_id} ${status}`);
        inputs.push({ kind: 'build_finished', machineId: m.machine_id, buildId: m.to_build_id!, ok: status === 'success', ...(error ? { reason: `build ${m.to_build_id} ${status}: ${error}` } : {}) });
      }
    }
    for (const m of rollout.machines.filter((x) => x.state === 'updating')) {
      const machine = await this.o.storage.machines.findById(m.machine_id);
      // A report counts only when it came after the machine was pointed at its new build.
      if (machine?.booted_build_id && machine.booted_at && m.started_at && machine.booted_at >= m.started_at) {
        // A new build made from a profile with a health check must send its result with the report.
        const healthCheck = machine.booted_build_id === m.to_build_id && Boolean((await this.o.storage.builds.findById(m.to_build_id))?.health_check);
        inputs.push({ kind: 'booted', machineId: m.machine_id, buildId: machine.booted_build_id, health: machine.booted_health ?? null, healthCheck });
      }
    }
    return inputs;
  }

  /** Performs a step's actions, each machine's in order, machines side by side; failures are logged and recorded. */
  async perform(rollout: Rollout, actions: RolloutAction[]): Promise<void> {
    const byMachine = new Map<number, RolloutAction[]>();
    const builds: number[] = [];
    for (const a of actions) {
      if (a.kind === 'cancel_build') builds.push(a.buildId);
      else byMachine.set(a.machineId, [...(byMachine.get(a.machineId) ?? []), a]);
    }
    await Promise.all([
      ...builds.map((buildId) =>
        this.o.builds.cancel(buildId, this.actor).catch((err: unknown) => {
          if (!(err instanceof DomainError)) this.o.logger.warn({ err, build: buildId }, `rollouts: could not cancel build ${buildId}`);
        }),
      ),
      ...[...byMachine.values()].map(async (list) => {
        for (const a of list) {
          try {
            await this.act(rollout, a);
          } catch (err) {
            this.o.logger.warn({ err, rollout: rollout.id, machine: a.kind === 'cancel_build' ? undefined : a.machineId }, `rollouts: rollout ${rollout.id}: ${a.kind} failed: ${(err as Error).message}`);
            await this.o.storage.events
              .record({ kind: 'rollout.action_failed', machineId: a.kind === 'cancel_build' ? null : a.machineId, actor: this.actor, message: `rollout ${rollout.id}: ${a.kind} failed: ${(err as Error).message}`, data: { rollout_id: rollout.id } })
              .catch(() => undefined);
            break;
          }
        }
      }),
    ]);
  }

  private async act(rollout: Rollout, a: RolloutAction): Promise<void> {
    if (a.kind === 'point') {
      const m = rollout.machines.find((x) => x.machine_id === a.machineId);
      const tag = m?.service_tag ?? `machine ${a.machineId}`;
      await this.o.machineImages.pointAt(a.machineId, a.buildId, this.actor, {
        kind: a.why === 'update' ? 'rollout.machine_updated' : 'rollout.machine_rolled_back',
        message:
          a.why === 'update'
            ? `rollout ${rollout.id} wave ${m?.wave ?? '?'}: ${tag} now boots build ${a.buildId}`
            : `rollout ${rollout.id} wave ${m?.wave ?? '?'}: ${tag} rolled back to build ${a.buildId ?? 'none'}`,
        requestAgentReboot: rollout.reboot === 'agent',
        rolloutId: rollout.id,
      });
    } else if (a.kind === 'reboot' && rollout.reboot === 'power') {
      await this.o.power.powerCycle(a.machineId, this.actor);
    }
    // `agent`: the request was written with the point; `none`: someone else reboots it.
  }
}
