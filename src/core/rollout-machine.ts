// The rollout state machine, pure: a rollout and its machines in, one input, the next rollout and the
// actions to perform out. No storage, no clock (the time is an input), no I/O: the engine
// (core/rollout-engine.ts) turns database facts into inputs and performs the actions.

import type { BootHealth } from './types.ts';

/** Where a rollout stands. `building`, `rolling` and `paused` are active; the others are final. */
export type RolloutState = 'building' | 'rolling' | 'paused' | 'succeeded' | 'failed' | 'rolled_back' | 'cancelled';
export const ROLLOUT_STATES: readonly RolloutState[] = ['building', 'rolling', 'paused', 'succeeded', 'failed', 'rolled_back', 'cancelled'];
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ['building', 'rolling', 'paused'];

/**
 * Where one machine of a rollout stands: its build runs (`building`), failed (`build_failed`) or waits
 * for its wave (`built`); it was pointed at the new build and rebooted and its report is awaited
 * (`updating`); it reported the new build in time (`healthy`) or not (`unhealthy`); it was put back on
 * its previous build (`rolled_back`); it needed nothing (`unchanged`); the rollout was cancelled first.
 */
export type RolloutMachineState = 'building' | 'build_failed' | 'built' | 'updating' | 'healthy' | 'unhealthy' | 'rolled_back' | 'unchanged' | 'cancelled';
export const ROLLOUT_MACHINE_STATES: readonly RolloutMachineState[] = [
  'building',
  'build_failed',
  'built',
  'updating',
  'healthy',
  'unhealthy',
  'rolled_back',
  'unchanged',
  'cancelled',
];

export type RebootMethod = 'power' | 'agent' | 'none';
export type BuildMode = 'missing' | 'always';

/** What a rollout was asked to do. */
export interface RolloutSettings {
  /** A label selector, e.g. `role=web,rack in (r1,r2)` */
  selector: string;
  /** `missing`: build only machines whose image is not of their current configuration; `always`: every one. */
  build: BuildMode;
  /** Machines in the first wave. */
  canary: number;
  /** Machines in each later wave. */
  batch_size: number;
  /** Most machines of a wave rebooting at once (a wave is at most this large); 0: no limit beyond batch_size. */
  max_unavailable: number;
  /** Failures (failed builds, machines not reporting in time) tolerated; one more stops and rolls back. */
  max_failures: number;
  /** How long a machine has to report that it booted its new build. */
  health_timeout_seconds: number;
  reboot: RebootMethod;
}

/** One machine of a rollout. */
export interface RolloutMachine {
  machine_id: number;
  /** e.g. `ABC123` */
  service_tag: string;
  /** 1 is the canary wave (when there is one), then the batches. 0: the machine needed nothing. */
  wave: number;
  /** The build the machine booted when the rollout started (null: it had no image). */
  from_build_id: number | null;
  /** The rollout's build of it (null until requested, and for unchanged machines). */
  to_build_id: number | null;
  state: RolloutMachineState;
  /** Why it failed, e.g. `no booted report for build 42 within 600 s` */
  message: string | null;
  /** When it was pointed at its new build. */
  started_at: string | null;
  /** Until when its booted report is awaited. */
  deadline_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** The health check result its report of the new build carried; absent when none did. */
  health?: BootHealth;
}

/** A rollout as the API shows it. */
export interface Rollout extends RolloutSettings {
  id: number;
  state: RolloutState;
  /** The wave in progress (0 before the first). */
  wave: number;
  /** How many waves there are. */
  waves: number;
  /** Grows with every write (a writer that read an older version writes nothing). */
  version: number;
  /** The state a paused rollout resumes to. */
  resume_state: 'building' | 'rolling' | null;
  /** Why it stopped, e.g. `3 failures (max 2) in wave 2: wave 2 rolled back` */
  message: string | null;
  /** e.g. `user:alice` */
  created_by: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  machines: RolloutMachine[];
}

/** What happened, as the engine saw it. */
export type RolloutInput =
  | { kind: 'build_finished'; machineId: number; buildId: number; ok: boolean; reason?: string }
  /**
   * The machine reported that it booted `buildId` (any build: only its new one counts), with the result
   * of its health check if it sent one. `healthCheck`: the new build has one, so a report without a
   * result does not count as healthy.
   */
  | { kind: 'booted'; machineId: number; buildId: number; health?: BootHealth | null; healthCheck?: boolean }
  /** Time passed: deadlines are checked and the rollout moves on where it can. */
  | { kind: 'tick' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'cancel' }
  /** The engine took the rollout up after a restart (or from another server): re-point what is in flight. */
  | { kind: 'restart' };

/** What the engine must do. */
export type RolloutAction =
  /** Point the machine at this build (null: at no image), the same path as a rollback. */
  | { kind: 'point'; machineId: number; buildId: number | null; why: 'update' | 'rollback' }
  /** Reboot it (by the rollout's reboot method) so that it boots the build it points at. */
  | { kind: 'reboot'; machineId: number; why: 'update' | 'rollback' }
  /** Stop a build of the rollout that still runs (the rollout was cancelled or failed). */
  | { kind: 'cancel_build'; buildId: number };

export interface RolloutStep {
  rollout: Rollout;
  actions: RolloutAction[];
  /** True when anything changed (the engine writes only then). */
  changed: boolean;
}

export const isRolloutActive = (state: RolloutState): boolean => ACTIVE_ROLLOUT_STATES.includes(state);

/**
 * Splits the machines that need a new build into waves: the canary first, then batches. A wave holds at
 * most `max_unavailable` machines when that is set. Returns the wave number of each, in order.
 */
export function planWaves(count: number, settings: Pick<RolloutSettings, 'canary' | 'batch_size' | 'max_unavailable'>): number[] {
  const cap = settings.max_unavailable > 0 ? settings.max_unavailable : Infinity;
  const canary = Math.min(settings.canary, cap);
  const batch = Math.max(1, Math.min(settings.batch_size, cap));
  const waves: number[] = [];
  let wave = 0;
  let left = 0;
  for (let i = 0; i < count; i++) {
    if (left === 0) {
      wave++;
      left = wave === 1 && canary > 0 ? canary : batch;
    }
    waves.push(wave);
    left--;
  }
  return waves;
}

/** Applies one input at time `now`: the rollout after it and what to do. */
export function stepRollout(current: Rollout, input: RolloutInput, now: Date): RolloutStep {
  const r: Rollout = { ...current, machines: current.machines.map((m) => ({ ...m })) };
  const actions: RolloutAction[] = [];
  const at = now.toISOString();
  const touch = (m: RolloutMachine, state: RolloutMachineState, fields: Partial<RolloutMachine> = {}) => {
    Object.assign(m, fields, { state, updated_at: at });
  };
  const final = !isRolloutActive(r.state);

  switch (input.kind) {
    case 'build_finished': {
      const m = r.machines.find((x) => x.machine_id === input.machineId);
      if (!m || m.state !== 'building' || m.to_build_id !== input.buildId) break;
      if (input.ok) touch(m, 'built');
      else touch(m, 'build_failed', { message: input.reason ?? `build ${input.buildId} failed`, finished_at: at });
      break;
    }
    case 'booted': {
      const m = r.machines.find((x) => x.machine_id === input.machineId);
      // Only a report of the new build counts; a machine still on its old image is not healthy.
      if (!m || m.state !== 'updating' || m.to_build_id !== input.buildId) break;
      const health = input.health ?? undefined;
      const withHealth = health ? { health } : {};
      if (health && !health.ok) {
        touch(m, 'unhealthy', { ...withHealth, finished_at: at, message: `health check failed on build ${input.buildId}${health.exit_code === null ? '' : ` (exit ${health.exit_code})`}${lastLine(health.output)}` });
      } else if (!health && input.healthCheck) {
        touch(m, 'unhealthy', { finished_at: at, message: `build ${input.buildId} reported without the result of its health check` });
      } else {
        touch(m, 'healthy', { ...withHealth, finished_at: at, message: null });
      }
      break;
    }
    case 'tick':
      if (final) break;
      for (const m of r.machines) {
        if (m.state === 'updating' && m.deadline_at !== null && m.deadline_at <= at) {
          touch(m, 'unhealthy', { finished_at: at, message: `no booted report for build ${m.to_build_id} within ${r.health_timeout_seconds} s` });
        }
      }
      break;
    case 'pause':
      if (r.state === 'building' || r.state === 'rolling') {
        r.resume_state = r.state;
        r.state = 'paused';
      }
      break;
    case 'resume':
      if (r.state === 'paused') {
        r.state = r.resume_state ?? 'building';
        r.resume_state = null;
      }
      break;
    case 'cancel':
      if (final) break;
      for (const m of r.machines) {
        if (m.state === 'building' && m.to_build_id !== null) actions.push({ kind: 'cancel_build', buildId: m.to_build_id });
        if (m.state === 'building' || m.state === 'built' || m.state === 'updating') touch(m, 'cancelled', { finished_at: at, message: 'the rollout was cancelled' });
      }
      finish(r, 'cancelled', 'cancelled', at);
      break;
    case 'restart':
      // The wave in flight is pointed again (idempotent); reboots are not repeated.
      for (const m of r.machines) {
        if (m.wave !== r.wave || r.wave === 0) continue;
        if (m.state === 'updating' || m.state === 'healthy') actions.push({ kind: 'point', machineId: m.machine_id, buildId: m.to_build_id, why: 'update' });
        if (m.state === 'rolled_back') actions.push({ kind: 'point', machineId: m.machine_id, buildId: m.from_build_id, why: 'rollback' });
      }
      break;
  }

  if (isRolloutActive(r.state)) advance(r, actions, now);
  const changed = actions.length > 0 || JSON.stringify(r) !== JSON.stringify(current);
  if (changed) r.updated_at = at;
  return { rollout: r, actions, changed };
}

/** `: <the last non-empty line of a command's output>`, at most 200 characters, or '' when it printed nothing. */
function lastLine(output: string): string {
  const line = output.split('\n').map((l) => l.trim()).filter(Boolean).pop();
  return line ? `: ${line.length > 200 ? `${line.slice(0, 199)}…` : line}` : '';
}

/** Moves an active rollout on as far as its machines allow. */
function advance(r: Rollout, actions: RolloutAction[], now: Date): void {
  const at = now.toISOString();
  const failures = r.machines.filter((m) => m.state === 'build_failed' || m.state === 'unhealthy').length;
  const tooMany = failures > r.max_failures;
  const limit = `${failures} failure${failures === 1 ? '' : 's'} (at most ${r.max_failures} tolerated)`;

  if (tooMany && r.wave > 0) {
    // Stop, and put every machine of the wave in progress back on its previous build.
    for (const m of r.machines) {
      if (m.wave !== r.wave || !(m.state === 'updating' || m.state === 'healthy' || m.state === 'unhealthy')) continue;
      const message = m.state === 'unhealthy' ? `${m.message}; rolled back` : `wave ${r.wave} rolled back`;
      m.state = 'rolled_back';
      m.message = message;
      m.finished_at = at;
      m.updated_at = at;
      actions.push({ kind: 'point', machineId: m.machine_id, buildId: m.from_build_id, why: 'rollback' });
      actions.push({ kind: 'reboot', machineId: m.machine_id, why: 'rollback' });
    }
    cancelRest(r, actions, at);
    finish(r, 'rolled_back', `${limit} in wave ${r.wave}: wave ${r.wave} rolled back`, at);
    return;
  }
  if (tooMany) {
    cancelRest(r, actions, at);
    finish(r, 'failed', `${limit} while building; no machine was moved`, at);
    return;
  }
  if (r.state === 'paused') return;
  if (r.state === 'building') {
    if (r.machines.some((m) => m.state === 'building')) return;
    r.state = 'rolling';
  }
  // rolling: start the next wave once the current one has no machine awaiting its report.
  while (!r.machines.some((m) => m.wave === r.wave && m.state === 'updating')) {
    if (r.wave >= r.waves) {
      finish(r, 'succeeded', failures > 0 ? `done with ${limit}` : null, at);
      return;
    }
    r.wave++;
    const deadline = new Date(now.getTime() + r.health_timeout_seconds * 1000).toISOString();
    for (const m of r.machines) {
      if (m.wave !== r.wave || m.state !== 'built') continue;
      Object.assign(m, { state: 'updating', started_at: at, deadline_at: deadline, updated_at: at });
      actions.push({ kind: 'point', machineId: m.machine_id, buildId: m.to_build_id, why: 'update' });
      actions.push({ kind: 'reboot', machineId: m.machine_id, why: 'update' });
    }
  }
}

/** Machines that never got to move are marked cancelled; their builds still running are stopped. */
function cancelRest(r: Rollout, actions: RolloutAction[], at: string): void {
  for (const m of r.machines) {
    if (m.state === 'building' && m.to_build_id !== null) actions.push({ kind: 'cancel_build', buildId: m.to_build_id });
    if (m.state === 'building' || m.state === 'built') {
      Object.assign(m, { state: 'cancelled', message: 'the rollout stopped before this machine’s wave', finished_at: at, updated_at: at });
    }
  }
}

function finish(r: Rollout, state: RolloutState, message: string | null, at: string): void {
  r.state = state;
  r.resume_state = null;
  r.message = message;
  r.finished_at = at;
}
