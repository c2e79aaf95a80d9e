import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakePowerDriver } from './fake/fake-driver.ts';
import type { PowerState } from './power-driver.ts';
import { PowerPoller, spreadOrder, type PowerPollerPorts } from './power-poller.ts';
import { PowerRunner } from './power-runner.ts';

function fleet(states: Record<string, PowerState | 'auth_failed'>) {
  const recorded: Array<[string, string]> = [];
  const ports: PowerPollerPorts<string> = {
    listMachines: async () =>
      Object.entries(states).map(([key, state]) => ({
        key,
        serviceTag: `TAG-${key}`,
        driver: () => (state === 'auth_failed' ? new FakePowerDriver().failNext('auth_failed') : new FakePowerDriver({ state })),
      })),
    record: async (key, outcome) => {
      recorded.push([key, outcome.ok ? outcome.result.powerState : outcome.error.code]);
    },
  };
  return { ports, recorded };
}

const runner = () => new PowerRunner({ concurrency: 2, callTimeoutMs: 1000, retryDelayMs: 1 });

describe('PowerPoller', () => {
  test('pollAll checks every machine once and records its state, or the failure', async () => {
    const { ports, recorded } = fleet({ M1: 'on', M2: 'off', M3: 'auth_failed' });
    await new PowerPoller(runner(), ports, { intervalMs: 60_000 }).pollAll();
    assert.deepEqual(recorded.sort(), [['M1', 'on'], ['M2', 'off'], ['M3', 'bmc_auth_failed']]);
  });

  test('started, it checks each machine spread over the interval, round after round; stopped, it checks nothing more', { timeout: 10_000 }, async () => {
    const { ports, recorded } = fleet({ A: 'on', B: 'off', C: 'on', D: 'off' });
    const poller = new PowerPoller(runner(), ports, { intervalMs: 100 });
    poller.start();
    while (['A', 'B', 'C', 'D'].some((k) => recorded.filter(([key]) => key === k).length < 2)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await poller.stop();
    const count = recorded.length;
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(recorded.length, count, 'no check after stop');
  });

  test('the order of checks depends on the keys only, not on the listing order', () => {
    const keys = Array.from({ length: 20 }, (_, i) => ({ key: `m${i}` }));
    const once = spreadOrder(keys).map((m) => m.key);
    const shuffled = spreadOrder([...keys].reverse()).map((m) => m.key);
    assert.deepEqual(shuffled, once);
    assert.deepEqual([...once].sort(), keys.map((m) => m.key).sort());
    assert.notDeepEqual(once, keys.map((m) => m.key), 'consecutive keys are spread out');
  });
});
