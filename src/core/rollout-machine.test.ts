import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BootHealth } from './types.ts';
import { planWaves, stepRollout, type Rollout, type RolloutAction, type RolloutInput, type RolloutMachineState, type RolloutState } from './rollout-machine.ts';

const T0 = new Date('2026-03-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/**
 * A rollout of machines 1..n (machine i boots build 100+i and gets build 200+i), in `building` with
 * every build running, canary 1 and batches of 2 unless overridden.
 */
function rollout(n: number, overrides: Partial<Rollout> = {}, states: Partial<Record<number, RolloutMachineState>> = {}): Rollout {
  const settings = { canary: 1, batch_size: 2, max_unavailable: 0, ...overrides };
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  // Unchanged machines are in no wave (0); the others are planned in order.
  const planned = planWaves(ids.filter((id) => states[id] !== 'unchanged').length, settings);
  const waves = ids.map((id) => (states[id] === 'unchanged' ? 0 : planned.shift()!));
  return {
    id: 1,
    selector: 'role=web',
    build: 'always',
    max_failures: 0,
    health_timeout_seconds: 60,
    reboot: 'agent',
    state: 'building',
    wave: 0,
    waves: Math.max(0, ...waves),
    version: 1,
    resume_state: null,
    message: null,
    created_by: 'user:alice',
    created_at: T0.toISOString(),
    updated_at: T0.toISOString(),
    finished_at: null,
    ...settings,
    ...overrides,
    machines: waves.map((wave, i) => ({
      machine_id: i + 1,
      service_tag: `M${i + 1}`,
      wave,
      from_build_id: 101 + i,
      to_build_id: 201 + i,
      state: states[i + 1] ?? 'building',
      message: null,
      started_at: null,
      deadline_at: null,
      finished_at: null,
      updated_at: T0.toISOString(),
    })),
  };
}

const built = (id: number): RolloutInput => ({ kind: 'build_finished', machineId: id, buildId: 200 + id, ok: true });
const buildFailed = (id: number): RolloutInput => ({ kind: 'build_finished', machineId: id, buildId: 200 + id, ok: false, reason: 'nix-build exited with code 1' });
const booted = (id: number, buildId = 200 + id): RolloutInput => ({ kind: 'booted', machineId: id, buildId });
/** A report of the new build with a health check result (`checked`: the build has a health check). */
const reported = (id: number, health: BootHealth | null, checked = true): RolloutInput => ({ kind: 'booted', machineId: id, buildId: 200 + id, health, healthCheck: checked });
const passed: BootHealth = { ok: true, exit_code: 0, output: 'active\n' };
const failedCheck: BootHealth = { ok: false, exit_code: 3, output: 'starting\ninactive\n\n' };
const tick: RolloutInput = { kind: 'tick' };
const update = (id: number): RolloutAction[] => [
  { kind: 'point', machineId: id, buildId: 200 + id, why: 'update' },
  { kind: 'reboot', machineId: id, why: 'update' },
];
const rollback = (id: number): RolloutAction[] => [
  { kind: 'point', machineId: id, buildId: 100 + id, why: 'rollback' },
  { kind: 'reboot', machineId: id, why: 'rollback' },
];

/** Applies inputs in order, each at its time (seconds after T0); returns the rollout and every action. */
function run(start: Rollout, inputs: Array<[number, RolloutInput]>): { rollout: Rollout; actions: RolloutAction[]; last: RolloutAction[] } {
  let r = start;
  const actions: RolloutAction[] = [];
  let last: RolloutAction[] = [];
  for (const [seconds, input] of inputs) {
    const step = stepRollout(r, input, at(seconds));
    r = step.rollout;
    last = step.actions;
    actions.push(...step.actions);
  }
  return { rollout: r, actions, last };
}

interface Case {
  name: string;
  start: Rollout;
  inputs: Array<[number, RolloutInput]>;
  state: RolloutState;
  wave: number;
  machines: RolloutMachineState[];
  /** Every action, in order (omitted: not checked). */
  actions?: RolloutAction[];
  message?: string | null;
}

const allBuilt = (n: number): Array<[number, RolloutInput]> => Array.from({ length: n }, (_, i) => [0, built(i + 1)]);

const CASES: Case[] = [
  {
    name: 'building: a finished build waits for the others; nothing moves yet',
    start: rollout(3),
    inputs: [[0, built(1)], [0, built(2)]],
    state: 'building',
    wave: 0,
    machines: ['built', 'built', 'building'],
    actions: [],
  },
  {
    name: 'building → rolling: when every build ended, the canary is pointed at its build and rebooted',
    start: rollout(3),
    inputs: allBuilt(3),
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
    actions: update(1),
  },
  {
    name: 'healthy canary: the next batch moves, together',
    start: rollout(3),
    inputs: [...allBuilt(3), [10, booted(1)]],
    state: 'rolling',
    wave: 2,
    machines: ['healthy', 'updating', 'updating'],
    actions: [...update(1), ...update(2), ...update(3)],
  },
  {
    name: 'every wave healthy: succeeded',
    start: rollout(3),
    inputs: [...allBuilt(3), [10, booted(1)], [20, booted(2)], [30, booted(3)]],
    state: 'succeeded',
    wave: 2,
    machines: ['healthy', 'healthy', 'healthy'],
    message: null,
  },
  {
    name: 'a report of the old build (or another) does not count: the machine stays updating',
    start: rollout(3),
    inputs: [...allBuilt(3), [5, booted(1, 101)], [6, booted(1, 999)]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
  },
  {
    name: 'a report for another machine’s build does not count either',
    start: rollout(3),
    inputs: [...allBuilt(3), [5, booted(1, 202)]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
  },
  {
    name: 'before the deadline a tick changes nothing',
    start: rollout(3),
    inputs: [...allBuilt(3), [59, tick]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
    actions: update(1),
  },
  {
    name: 'no report by the deadline: unhealthy, too many failures, the wave is rolled back and the rest never moves',
    start: rollout(3),
    inputs: [...allBuilt(3), [60, tick]],
    state: 'rolled_back',
    wave: 1,
    machines: ['rolled_back', 'cancelled', 'cancelled'],
    actions: [...update(1), ...rollback(1)],
    message: '1 failure (at most 0 tolerated) in wave 1: wave 1 rolled back',
  },
  {
    name: 'a failure in a batch rolls back the whole batch, healthy machines of it included, and keeps earlier waves',
    start: rollout(5),
    inputs: [...allBuilt(5), [10, booted(1)], [20, booted(2)], [80, tick]],
    state: 'rolled_back',
    wave: 2,
    machines: ['healthy', 'rolled_back', 'rolled_back', 'cancelled', 'cancelled'],
    actions: [...update(1), ...update(2), ...update(3), ...rollback(2), ...rollback(3)],
  },
  {
    name: 'a late report after the timeout does not undo it',
    start: rollout(3, { max_failures: 1 }),
    inputs: [...allBuilt(3), [60, tick], [61, booted(1)]],
    state: 'rolling',
    wave: 2,
    machines: ['unhealthy', 'updating', 'updating'],
  },
  {
    name: 'failures within max_failures: the rollout goes on and succeeds, saying so',
    start: rollout(3, { max_failures: 1 }),
    inputs: [...allBuilt(3), [60, tick], [70, booted(2)], [71, booted(3)]],
    state: 'succeeded',
    wave: 2,
    machines: ['unhealthy', 'healthy', 'healthy'],
    message: 'done with 1 failure (at most 1 tolerated)',
  },
  {
    name: 'a failed build counts as a failure: with none tolerated, the rollout fails and nothing moves',
    start: rollout(3),
    inputs: [[0, buildFailed(2)]],
    state: 'failed',
    wave: 0,
    machines: ['cancelled', 'build_failed', 'cancelled'],
    actions: [
      { kind: 'cancel_build', buildId: 201 },
      { kind: 'cancel_build', buildId: 203 },
    ],
    message: '1 failure (at most 0 tolerated) while building; no machine was moved',
  },
  {
    name: 'a tolerated failed build: the machine keeps its image and its wave goes on without it',
    start: rollout(3, { max_failures: 1 }),
    inputs: [[0, buildFailed(1)], [0, built(2)], [0, built(3)]],
    state: 'rolling',
    wave: 2,
    machines: ['build_failed', 'updating', 'updating'],
    actions: [...update(2), ...update(3)],
  },
  {
    name: 'pause while rolling: the wave in flight finishes, the next does not start',
    start: rollout(3),
    inputs: [...allBuilt(3), [1, { kind: 'pause' }], [10, booted(1)]],
    state: 'paused',
    wave: 1,
    machines: ['healthy', 'built', 'built'],
    actions: update(1),
  },
  {
    name: 'resume: the next wave starts at once',
    start: rollout(3),
    inputs: [...allBuilt(3), [1, { kind: 'pause' }], [10, booted(1)], [20, { kind: 'resume' }]],
    state: 'rolling',
    wave: 2,
    machines: ['healthy', 'updating', 'updating'],
    actions: [...update(1), ...update(2), ...update(3)],
  },
  {
    name: 'paused, a timeout still counts and still rolls its wave back',
    start: rollout(3),
    inputs: [...allBuilt(3), [1, { kind: 'pause' }], [60, tick]],
    state: 'rolled_back',
    wave: 1,
    machines: ['rolled_back', 'cancelled', 'cancelled'],
  },
  {
    name: 'pause while building: builds finish, no wave starts; resume goes on rolling',
    start: rollout(2),
    inputs: [[0, { kind: 'pause' }], [1, built(1)], [1, built(2)]],
    state: 'paused',
    wave: 0,
    machines: ['built', 'built'],
    actions: [],
  },
  {
    name: 'resume after a paused build phase',
    start: rollout(2),
    inputs: [[0, { kind: 'pause' }], [1, built(1)], [1, built(2)], [2, { kind: 'resume' }]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built'],
    actions: update(1),
  },
  {
    name: 'cancel: running builds are stopped, waiting machines cancelled, moved machines stay where they are',
    start: rollout(3),
    inputs: [[0, built(1)], [0, built(2)], [0, built(3)], [5, booted(1)], [6, { kind: 'cancel' }]],
    state: 'cancelled',
    wave: 2,
    machines: ['healthy', 'cancelled', 'cancelled'],
  },
  {
    name: 'cancel while building stops the builds still running',
    start: rollout(2),
    inputs: [[0, built(1)], [1, { kind: 'cancel' }]],
    state: 'cancelled',
    wave: 0,
    machines: ['cancelled', 'cancelled'],
    actions: [{ kind: 'cancel_build', buildId: 202 }],
  },
  {
    name: 'a finished rollout ignores everything',
    start: rollout(3),
    inputs: [...allBuilt(3), [60, tick], [61, booted(1)], [62, { kind: 'resume' }], [63, { kind: 'cancel' }], [200, tick]],
    state: 'rolled_back',
    wave: 1,
    machines: ['rolled_back', 'cancelled', 'cancelled'],
  },
  {
    name: 'restart mid-wave: what was pointed is pointed again, nobody is rebooted again, the deadline holds',
    start: rollout(3),
    inputs: [...allBuilt(3), [30, { kind: 'restart' }], [59, tick]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
    actions: [...update(1), { kind: 'point', machineId: 1, buildId: 201, why: 'update' }],
  },
  {
    name: 'restart, then the report: the wave completes as if nothing happened',
    start: rollout(3),
    inputs: [...allBuilt(3), [30, { kind: 'restart' }], [40, booted(1)]],
    state: 'rolling',
    wave: 2,
    machines: ['healthy', 'updating', 'updating'],
  },
  {
    name: 'unchanged machines (nothing to build) never move',
    start: rollout(2, {}, { 2: 'unchanged' }),
    inputs: [[0, built(1)], [5, booted(1)]],
    state: 'succeeded',
    wave: 1,
    machines: ['healthy', 'unchanged'],
  },
  {
    name: 'health check passed with the report of the new build: healthy, the next wave moves',
    start: rollout(3),
    inputs: [...allBuilt(3), [10, reported(1, passed)]],
    state: 'rolling',
    wave: 2,
    machines: ['healthy', 'updating', 'updating'],
    actions: [...update(1), ...update(2), ...update(3)],
  },
  {
    name: 'health check failed: unhealthy at once (no waiting for the deadline), the wave is rolled back',
    start: rollout(3),
    inputs: [...allBuilt(3), [10, reported(1, failedCheck)]],
    state: 'rolled_back',
    wave: 1,
    machines: ['rolled_back', 'cancelled', 'cancelled'],
    actions: [...update(1), ...rollback(1)],
    message: '1 failure (at most 0 tolerated) in wave 1: wave 1 rolled back',
  },
  {
    name: 'a failed health check in a batch rolls back the whole batch, the healthy machine of it included',
    start: rollout(3),
    inputs: [...allBuilt(3), [10, reported(1, passed)], [20, reported(2, passed)], [21, reported(3, failedCheck)]],
    state: 'rolled_back',
    wave: 2,
    machines: ['healthy', 'rolled_back', 'rolled_back'],
    actions: [...update(1), ...update(2), ...update(3), ...rollback(2), ...rollback(3)],
  },
  {
    name: 'the build has a health check but the report carries no result: unhealthy',
    start: rollout(3, { max_failures: 1 }),
    inputs: [...allBuilt(3), [10, reported(1, null)]],
    state: 'rolling',
    wave: 2,
    machines: ['unhealthy', 'updating', 'updating'],
  },
  {
    name: 'a failed result counts even when the build names no health check',
    start: rollout(3, { max_failures: 1 }),
    inputs: [...allBuilt(3), [10, reported(1, failedCheck, false)]],
    state: 'rolling',
    wave: 2,
    machines: ['unhealthy', 'updating', 'updating'],
  },
  {
    name: 'no health check and no result: the report alone makes it healthy',
    start: rollout(1),
    inputs: [...allBuilt(1), [10, reported(1, null, false)]],
    state: 'succeeded',
    wave: 1,
    machines: ['healthy'],
  },
  {
    name: 'a failed health check sent for the old build does not count: still awaited, then times out',
    start: rollout(3, { max_failures: 1 }),
    inputs: [...allBuilt(3), [5, { kind: 'booted', machineId: 1, buildId: 101, health: failedCheck, healthCheck: true }], [30, tick]],
    state: 'rolling',
    wave: 1,
    machines: ['updating', 'built', 'built'],
  },
  {
    name: 'nothing to do at all: succeeded at the first tick',
    start: rollout(1, {}, { 1: 'unchanged' }),
    inputs: [[0, tick]],
    state: 'succeeded',
    wave: 0,
    machines: ['unchanged'],
    actions: [],
  },
];

describe('rollout state machine', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { rollout: r, actions } = run(c.start, c.inputs);
      assert.equal(r.state, c.state);
      assert.equal(r.wave, c.wave);
      assert.deepEqual(r.machines.map((m) => m.state), c.machines);
      if (c.actions) assert.deepEqual(actions, c.actions);
      if (c.message !== undefined) assert.equal(r.message, c.message);
      if (['succeeded', 'failed', 'rolled_back', 'cancelled'].includes(c.state)) assert.notEqual(r.finished_at, null);
    });
  }

  test('the deadline is the health timeout after the machine was pointed; reasons name the build and the timeout', () => {
    const { rollout: r } = run(rollout(2, { health_timeout_seconds: 90 }), [[0, built(1)], [7, built(2)]]);
    assert.equal(r.machines[0]!.started_at, at(7).toISOString());
    assert.equal(r.machines[0]!.deadline_at, at(97).toISOString());
    const late = stepRollout(r, tick, at(97)).rollout;
    assert.equal(late.machines[0]!.message, 'no booted report for build 201 within 90 s; rolled back');
  });

  test('a health result is kept on the machine, and a failure’s reason names the build, the exit code and the last line printed', () => {
    const failed = run(rollout(3, { max_failures: 1 }), [...allBuilt(3), [10, reported(1, failedCheck)]]).rollout.machines[0]!;
    assert.equal(failed.message, 'health check failed on build 201 (exit 3): inactive');
    assert.deepEqual(failed.health, failedCheck);
    const timedOut = run(rollout(3, { max_failures: 1 }), [...allBuilt(3), [10, reported(1, { ok: false, exit_code: null, output: '' })]]).rollout.machines[0]!;
    assert.equal(timedOut.message, 'health check failed on build 201');
    const missing = run(rollout(3, { max_failures: 1 }), [...allBuilt(3), [10, reported(1, null)]]).rollout.machines[0]!;
    assert.equal(missing.message, 'build 201 reported without the result of its health check');
    assert.equal(missing.health, undefined);
    const healthy = run(rollout(3), [...allBuilt(3), [10, reported(1, passed)]]).rollout.machines[0]!;
    assert.deepEqual([healthy.message, healthy.health], [null, passed]);
    const rolledBack = run(rollout(3), [...allBuilt(3), [10, reported(1, failedCheck)]]).rollout.machines[0]!;
    assert.equal(rolledBack.message, 'health check failed on build 201 (exit 3): inactive; rolled back');
  });

  test('an input that changes nothing reports no change (the engine writes nothing)', () => {
    const { rollout: r } = run(rollout(2), allBuilt(2));
    const idle = stepRollout(r, tick, at(10));
    assert.equal(idle.changed, false);
    assert.deepEqual(idle.actions, []);
    assert.equal(stepRollout(r, booted(1, 999), at(10)).changed, false);
    assert.equal(stepRollout(r, booted(1), at(10)).changed, true);
  });

  test('the input rollout is never modified', () => {
    const start = rollout(2);
    const copy = structuredClone(start);
    run(start, [...allBuilt(2), [60, tick]]);
    assert.deepEqual(start, copy);
  });
});

describe('wave planning', () => {
  const cases: Array<[string, number, { canary: number; batch_size: number; max_unavailable: number }, number[]]> = [
    ['canary then batches', 8, { canary: 1, batch_size: 3, max_unavailable: 0 }, [1, 2, 2, 2, 3, 3, 3, 4]],
    ['no canary: batches from the first wave', 5, { canary: 0, batch_size: 2, max_unavailable: 0 }, [1, 1, 2, 2, 3]],
    ['max_unavailable caps every wave', 5, { canary: 3, batch_size: 4, max_unavailable: 2 }, [1, 1, 2, 2, 3]],
    ['a canary larger than the fleet', 2, { canary: 5, batch_size: 2, max_unavailable: 0 }, [1, 1]],
    ['20 machines, canary 1, batches of 5', 20, { canary: 1, batch_size: 5, max_unavailable: 0 }, [1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5]],
    ['nothing to plan', 0, { canary: 1, batch_size: 5, max_unavailable: 0 }, []],
  ];
  for (const [name, count, settings, expected] of cases) {
    test(name, () => assert.deepEqual(planWaves(count, settings), expected));
  }
});
