import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { BmcPassword, type IpmiTarget } from '../bmc-target.ts';
import { PowerError } from '../power-error.ts';
import { PowerRunner, type PowerStep } from '../power-runner.ts';
import { watchCommandLines } from '../../../test/support/power/cmdline-watch.ts';
import { ipmiSimSkipReason, startIpmiSimulator, type IpmiSimulator } from '../../../test/support/power/ipmi-simulator.ts';
import { IpmiDriver } from './ipmi-driver.ts';

const skip = ipmiSimSkipReason();
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

function target(sim: { host: string; port: number }, password = PASSWORD): IpmiTarget {
  return { type: 'ipmi', address: { host: sim.host, port: sim.port }, username: 'admin', password: new BmcPassword(password) };
}

/** Collects log lines and steps, to check that the password is in none of them. */
function recordingRunner(options: Partial<ConstructorParameters<typeof PowerRunner>[0]> = {}) {
  const lines: string[] = [];
  const steps: PowerStep[] = [];
  const logger = { info: (o: object, m: string) => lines.push(JSON.stringify(o) + m), warn: (o: object, m: string) => lines.push(JSON.stringify(o) + m) };
  const runner = new PowerRunner({ concurrency: 4, callTimeoutMs: 10_000, retryDelayMs: 50, settleTimeoutMs: 8000, settleIntervalMs: 200, logger, onStep: (s) => steps.push(s), ...options });
  return { runner, lines, steps };
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('IPMI driver against OpenIPMI ipmi_sim (power follows a real process)', { skip, timeout: 90_000 }, () => {
  let sim: IpmiSimulator;
  before(async () => {
    sim = await startIpmiSimulator({ password: PASSWORD, machine: ['sleep', '600'] });
  });
  after(async () => {
    await sim?.stop();
  });

  test('status, on, cycle, off through the runner change the simulated machine; the password is never on a command line or in a log', async () => {
    const { runner, lines, steps } = recordingRunner();
    const driver = () => new IpmiDriver(target(sim), { commandTimeoutMs: 10_000 });

    assert.deepEqual((await runner.run(driver(), { action: 'status' })).powerState, 'off');
    assert.equal(sim.machinePid(), undefined);

    const on = await watchCommandLines(runner.run(driver(), { action: 'on' }), PASSWORD, 'ipmitool');
    assert.equal(on.result.status, 'fulfilled');
    assert.equal(on.result.status === 'fulfilled' && on.result.value.powerState, 'on');
    assert.deepEqual(on.leaked, []);
    const firstPid = sim.machinePid();
    assert.ok(firstPid, 'power on started the machine process');

    const cycle = await watchCommandLines(runner.run(driver(), { action: 'cycle' }), PASSWORD, 'ipmitool');
    assert.equal(cycle.result.status, 'fulfilled');
    assert.deepEqual(cycle.leaked, []);
    await until('the machine process to be restarted by the cycle', () => {
      const pid = sim.machinePid();
      return pid !== undefined && pid !== firstPid;
    });

    const off = await watchCommandLines(runner.run(driver(), { action: 'off' }), PASSWORD, 'ipmitool');
    assert.equal(off.result.status === 'fulfilled' && off.result.value.powerState, 'off');
    assert.deepEqual(off.leaked, []);
    assert.equal(sim.machinePid(), undefined, 'power off stopped the machine process');

    assert.ok(steps.some((s) => s.step === 'power_cycle' && s.outcome === 'ok'));
    for (const line of lines) assert.ok(!line.includes(PASSWORD), `log line carries the password: ${line}`);
  });

  test('a BMC without boot override support refuses "next boot PXE": the refusal is a failed step and power on still happens', async () => {
    const { runner, steps } = recordingRunner();
    const result = await runner.run(new IpmiDriver(target(sim), { commandTimeoutMs: 10_000 }), { action: 'on', bootDevice: 'pxe' });
    assert.equal(result.powerState, 'on');
    const pxe = steps.find((s) => s.step === 'set_boot_pxe');
    assert.equal(pxe?.outcome, 'failed');
    assert.equal(pxe?.code, 'bmc_refused');
    assert.match(pxe?.message ?? '', /Invalid data field in request/);
    await runner.run(new IpmiDriver(target(sim), { commandTimeoutMs: 10_000 }), { action: 'off' });
  });

  test('a wrong password is a clear auth_failed error, not retried, and the error does not carry it', async () => {
    const { runner, steps } = recordingRunner();
    const wrong = `wrong-${randomBytes(4).toString('hex')}`;
    await assert.rejects(runner.run(new IpmiDriver(target(sim, wrong), { commandTimeoutMs: 10_000 }), { action: 'status' }), (err: unknown) => {
      assert.ok(err instanceof PowerError);
      assert.equal(err.kind, 'auth_failed');
      assert.equal(err.code, 'bmc_auth_failed');
      assert.match(err.message, /refused the user name or password \(RAKP 2 HMAC is invalid\)/);
      assert.ok(!err.message.includes(wrong));
      return true;
    });
    assert.equal(steps.length, 1, 'an auth failure is not retried (it could lock the account)');
  });

  test('an unknown user is auth_failed too', async () => {
    const driver = new IpmiDriver({ ...target(sim), username: 'nobody' }, { commandTimeoutMs: 10_000 });
    await assert.rejects(driver.status({ signal: AbortSignal.timeout(10_000) }), (err: unknown) => err instanceof PowerError && err.kind === 'auth_failed' && /unauthorized name/.test(err.message));
  });
});

describe('IPMI driver with chassis control (boot device support)', { skip, timeout: 60_000 }, () => {
  test('on with boot device pxe sets the next boot to PXE before switching on', async () => {
    const sim = await startIpmiSimulator({ password: PASSWORD, chassisControl: true });
    try {
      const { runner } = recordingRunner();
      const result = await runner.run(new IpmiDriver(target(sim), { commandTimeoutMs: 10_000 }), { action: 'on', bootDevice: 'pxe' });
      assert.equal(result.powerState, 'on');
      assert.ok(sim.controlPowerOn());
      const log = sim.controlLog();
      assert.ok(log.indexOf('set boot pxe') >= 0 && log.indexOf('set boot pxe') < log.indexOf('set power 1'), log.join(' | '));
    } finally {
      await sim.stop();
    }
  });
});

/** What the garbage BMC answers to anything: 40 bytes that are not an RMCP packet. */
const GARBAGE = Buffer.from('not an RMCP packet, not IPMI at all....', 'ascii');

describe('IPMI driver against silent and garbage BMCs', { skip, timeout: 60_000 }, () => {
  let blackHole: Socket;
  let garbage: Socket;
  before(async () => {
    blackHole = createSocket('udp4');
    garbage = createSocket('udp4');
    // The same garbage every time, and none of it RMCP (whose first byte is 0x06): random bytes now and
    // then began like a real answer and got another refusal from ipmitool.
    garbage.on('message', (_msg, rinfo) => garbage.send(GARBAGE, rinfo.port, rinfo.address));
    await Promise.all([blackHole, garbage].map((s) => new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))));
  });
  after(() => {
    blackHole?.close();
    garbage?.close();
  });

  test('a BMC that never answers is a timeout after the call limit, with the password still off every command line', async () => {
    const { runner } = recordingRunner({ callTimeoutMs: 1500 });
    const driver = new IpmiDriver(target({ host: '127.0.0.1', port: blackHole.address().port }), { commandTimeoutMs: 10_000 });
    const seen = await watchCommandLines(runner.run(driver, { action: 'status' }), PASSWORD, 'ipmitool');
    assert.equal(seen.result.status, 'rejected');
    const err = (seen.result as PromiseRejectedResult).reason;
    assert.ok(err instanceof PowerError && err.kind === 'timeout', String(err));
    assert.ok(seen.watched.some((l) => l.includes(' -E ')), 'ipmitool was seen running, with -E');
    assert.deepEqual(seen.leaked, []);
  });

  test('a BMC answering garbage is a clear error, not a hang', async () => {
    const driver = new IpmiDriver(target({ host: '127.0.0.1', port: garbage.address().port }), { commandTimeoutMs: 20_000 });
    await assert.rejects(driver.status({ signal: AbortSignal.timeout(20_000) }), (err: unknown) => {
      assert.ok(err instanceof PowerError, String(err));
      assert.equal(err.kind, 'unreachable');
      assert.match(err.message, /^ipmi: no IPMI answer from 127\.0\.0\.1:\d+/);
      return true;
    });
  });
});
