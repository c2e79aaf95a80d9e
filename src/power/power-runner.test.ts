import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakePowerDriver } from './fake/fake-driver.ts';
import type { PowerCallOptions, PowerDriver, PowerState } from './power-driver.ts';
import { PowerError } from './power-error.ts';
import { PowerRunner, type PowerRunnerOptions, type PowerStep } from './power-runner.ts';

const FIXED = new Date('2026-11-28T12:00:00Z');

function runner(over: Partial<PowerRunnerOptions> = {}) {
  const steps: PowerStep[] = [];
  const r = new PowerRunner({ concurrency: 16, callTimeoutMs: 1000, retryDelayMs: 1, settleTimeoutMs: 200, settleIntervalMs: 10, now: () => FIXED, onStep: (s) => steps.push(s), ...over });
  return { r, steps };
}

describe('PowerRunner', () => {
  test('status reports the state and when it was checked', async () => {
    const { r } = runner();
    assert.deepEqual(await r.run(new FakePowerDriver({ state: 'on' }), { action: 'status' }), { powerState: 'on', checkedAt: FIXED });
  });

  const sequences: Array<[string, PowerState, Parameters<PowerRunner['run']>[1], string[], PowerState]> = [
    ['on from off', 'off', { action: 'on' }, ['status', 'on', 'status'], 'on'],
    ['on with PXE sets the boot device first', 'off', { action: 'on', bootDevice: 'pxe' }, ['status', 'pxe', 'on', 'status'], 'on'],
    ['on when already on does nothing', 'on', { action: 'on', bootDevice: 'pxe' }, ['status'], 'on'],
    ['off from on', 'on', { action: 'off' }, ['status', 'off', 'status'], 'off'],
    ['off when already off does nothing', 'off', { action: 'off' }, ['status'], 'off'],
    ['cycle when on', 'on', { action: 'cycle', bootDevice: 'pxe' }, ['pxe', 'status', 'cycle', 'status'], 'on'],
    ['cycle when off powers on', 'off', { action: 'cycle', bootDevice: 'pxe' }, ['pxe', 'status', 'on', 'status'], 'on'],
    ['reset when on', 'on', { action: 'reset' }, ['status', 'reset', 'status'], 'on'],
  ];
  for (const [name, start, request, calls, end] of sequences) {
    test(`${name}: ${calls.join(', ')}`, async () => {
      const fake = new FakePowerDriver({ state: start });
      const result = await runner().r.run(fake, request);
      assert.deepEqual(fake.calls, calls);
      assert.equal(result.powerState, end);
      assert.ok(fake.closed, 'the driver is closed after the action');
    });
  }

  test('a PXE boot request reaches the boot (the fake counts boots that started from the network)', async () => {
    const fake = new FakePowerDriver({ state: 'on' });
    await runner().r.run(fake, { action: 'cycle', bootDevice: 'pxe' });
    assert.equal(fake.pxeBoots, 1);
  });

  test('one retry: a BMC that fails once is fine, and both attempts are reported', async () => {
    const fake = new FakePowerDriver({ state: 'on' }).failNext('unreachable');
    const { r, steps } = runner();
    assert.equal((await r.run(fake, { action: 'status' })).powerState, 'on');
    assert.deepEqual(steps.map((s) => [s.attempt, s.outcome, s.code]), [[1, 'failed', 'bmc_unreachable'], [2, 'ok', undefined]]);
  });

  test('only one retry: the second failure is the answer', async () => {
    const fake = new FakePowerDriver().failNext('bad_answer', 5);
    await assert.rejects(runner().r.run(fake, { action: 'status' }), (err: unknown) => err instanceof PowerError && err.kind === 'bad_answer');
    assert.equal(fake.calls.length, 2);
  });

  for (const kind of ['auth_failed', 'refused', 'tls_untrusted'] as const) {
    test(`${kind} is not retried`, async () => {
      const fake = new FakePowerDriver().failNext(kind);
      await assert.rejects(runner().r.run(fake, { action: 'status' }), (err: unknown) => err instanceof PowerError && err.kind === kind);
      assert.equal(fake.calls.length, 1);
    });
  }

  test('a call that hangs ends at the call limit as a timeout, then is retried', async () => {
    const fake = new FakePowerDriver({ state: 'off' }).hangNext(1);
    const { r, steps } = runner({ callTimeoutMs: 50 });
    assert.equal((await r.run(fake, { action: 'status' })).powerState, 'off');
    assert.equal(steps[0]?.code, 'bmc_timeout');
  });

  test('a cycle that timed out is not sent again (the BMC may have done it); unreachable is', async () => {
    const timedOut = new FakePowerDriver({ state: 'on' });
    const r1 = runner({ callTimeoutMs: 50 }).r;
    const cycle = timedOut.powerCycle.bind(timedOut);
    timedOut.powerCycle = (o) => (timedOut.hangNext(1), cycle(o));
    await assert.rejects(r1.run(timedOut, { action: 'cycle' }), (err: unknown) => err instanceof PowerError && err.kind === 'timeout');
    assert.deepEqual(timedOut.calls, ['status', 'cycle']);

    const unreachable = new FakePowerDriver({ state: 'on' });
    const cycle2 = unreachable.powerCycle.bind(unreachable);
    let first = true;
    unreachable.powerCycle = (o) => {
      if (first) unreachable.failNext('unreachable');
      first = false;
      return cycle2(o);
    };
    await runner().r.run(unreachable, { action: 'cycle' });
    assert.deepEqual(unreachable.calls, ['status', 'cycle', 'cycle', 'status']);
  });

  test('a BMC that refuses the boot override still gets its power action; a refusal of the action itself fails', async () => {
    const fake = new FakePowerDriver({ state: 'off' });
    fake.setNextBootPxe = async () => {
      fake.calls.push('pxe');
      throw new PowerError('refused', 'no boot override here');
    };
    const { r, steps } = runner();
    assert.equal((await r.run(fake, { action: 'on', bootDevice: 'pxe' })).powerState, 'on');
    assert.deepEqual(steps.filter((s) => s.outcome === 'failed').map((s) => s.step), ['set_boot_pxe']);
    await assert.rejects(runner().r.run(new FakePowerDriver({ state: 'off' }), { action: 'reset' }), (err: unknown) => err instanceof PowerError && err.kind === 'refused');
  });

  test('the state after an action is watched until it matches, within the watch time', async () => {
    const fake = new FakePowerDriver({ state: 'on' });
    let statusCalls = 0;
    const status = fake.status.bind(fake);
    // A BMC that takes a few checks to report "off" after the command.
    fake.powerOff = async (o) => {
      fake.calls.push('off');
      statusCalls = 0;
      fake.status = async (so) => (++statusCalls >= 3 ? ((fake.state = 'off'), status(so)) : 'on');
      void o;
    };
    assert.equal((await runner().r.run(fake, { action: 'off' })).powerState, 'off');
    assert.equal(statusCalls, 3);

    const stuck = new FakePowerDriver({ state: 'on' });
    stuck.powerOff = async () => {};
    assert.equal((await runner({ settleTimeoutMs: 50 }).r.run(stuck, { action: 'off' })).powerState, 'on', 'the state seen last is the answer');
  });

  test('bulk: every machine gets an outcome, and BMC calls in flight never exceed the limit', async () => {
    let inFlight = 0;
    let peak = 0;
    /** A BMC that takes a little time per call, counting calls in flight. */
    class SlowDriver extends FakePowerDriver {
      override async status(o: PowerCallOptions): Promise<PowerState> {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        return super.status(o);
      }
    }
    const { r } = runner({ concurrency: 4 });
    const targets: Array<{ key: string; driver: PowerDriver }> = Array.from({ length: 30 }, (_, i) => ({ key: `M${i}`, driver: new SlowDriver({ state: 'off' }) }));
    targets[7] = { key: 'M7', driver: new FakePowerDriver().failNext('auth_failed') };
    const outcomes = await r.runMany(targets, { action: 'status' });
    assert.equal(outcomes.length, 30);
    assert.deepEqual(outcomes.map((o) => o.key), targets.map((t) => t.key));
    const failed = outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed.map((o) => o.key), ['M7']);
    assert.equal(peak, 4);
    assert.equal(r.callsInFlight, 0);
  });
});
