import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { BmcPassword, parseFingerprint, type RedfishTarget, type RedfishTls } from '../bmc-target.ts';
import { PowerError } from '../power-error.ts';
import { PowerRunner, type PowerStep } from '../power-runner.ts';
import { ProcessMachine } from '../../../test/support/power/process-machine.ts';
import { startRedfishTestServer, type RedfishTestServer } from '../../../test/support/power/redfish-test-server.ts';
import { redfishtoolSkipReason, runRedfishtool } from '../../../test/support/power/redfishtool.ts';
import { createSelfSignedCertificate, opensslSkipReason, type TestCertificate } from '../../../test/support/power/self-signed-cert.ts';
import { RedfishDriver } from './redfish-driver.ts';

const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const call = () => ({ signal: AbortSignal.timeout(10_000) });

describe('Redfish driver against the Redfish test server (HTTPS, self-signed)', { skip: opensslSkipReason(), timeout: 120_000 }, () => {
  let cert: TestCertificate;
  let machine: ProcessMachine;
  let server: RedfishTestServer;
  let pinned: RedfishTls;

  before(async () => {
    cert = createSelfSignedCertificate();
    pinned = { verify: true, fingerprint: parseFingerprint(cert.fingerprint256) };
    machine = new ProcessMachine(() => ['sleep', '600']);
    server = await startRedfishTestServer({ keyPem: cert.keyPem, certPem: cert.certPem, username: 'root', password: PASSWORD, machine });
  });
  after(async () => {
    await machine?.powerOff();
    await server?.close();
  });

  const target = (over: Partial<RedfishTarget> = {}): RedfishTarget => ({
    type: 'redfish',
    address: { host: '127.0.0.1', port: server.port },
    username: 'root',
    password: new BmcPassword(PASSWORD),
    tls: pinned,
    auth: 'session',
    ...over,
  });
  /** One status call on a fresh driver, logged out afterwards. */
  const statusOf = async (t: RedfishTarget) => {
    const driver = new RedfishDriver(t, { requestTimeoutMs: 10_000 });
    try {
      return await driver.status(call());
    } finally {
      await driver.close();
    }
  };
  const runner = (steps: PowerStep[] = []) => new PowerRunner({ concurrency: 4, callTimeoutMs: 10_000, retryDelayMs: 50, settleTimeoutMs: 5000, settleIntervalMs: 100, onStep: (s) => steps.push(s) });

  test('with a session: on with next boot PXE, cycle, off change the machine; every session is closed', async () => {
    const r = runner();
    assert.equal((await r.run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'status' })).powerState, 'off');

    const on = await r.run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'on', bootDevice: 'pxe' });
    assert.equal(on.powerState, 'on');
    assert.ok(machine.pid);
    assert.deepEqual(machine.boots, ['pxe'], 'the machine booted from the network');
    assert.deepEqual(server.bootOverride(), { enabled: 'Disabled', target: 'None' }, 'a Once override is used up by the boot');

    const firstPid = machine.pid;
    const cycled = await r.run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'cycle', bootDevice: 'pxe' });
    assert.equal(cycled.powerState, 'on');
    assert.notEqual(machine.pid, firstPid, 'the cycle restarted the machine');
    assert.deepEqual(machine.boots, ['pxe', 'pxe']);

    const off = await r.run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'off' });
    assert.equal(off.powerState, 'off');
    assert.equal(machine.pid, undefined);

    assert.equal(server.openSessions(), 0, 'the driver logs out');
    const authed = server.requests.filter((q) => q.path.startsWith('/redfish/v1/Systems'));
    assert.ok(authed.length > 0 && authed.every((q) => q.auth === 'session'), JSON.stringify(authed));
  });

  test('with HTTP basic, and a configured system id', async () => {
    const before = server.requests.length;
    assert.equal(await statusOf(target({ auth: 'basic', systemId: '1' })), 'off');
    const made = server.requests.slice(before);
    assert.deepEqual(made, [{ method: 'GET', path: '/redfish/v1/Systems/1', auth: 'basic' }]);
  });

  test('"off" on a machine that is off changes nothing; a reset the state does not allow is the BMC\'s 409, named', async () => {
    assert.equal((await runner().run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'off' })).powerState, 'off');
    await assert.rejects(runner().run(new RedfishDriver(target(), { requestTimeoutMs: 10_000 }), { action: 'reset' }), (err: unknown) => {
      assert.ok(err instanceof PowerError);
      assert.equal(err.kind, 'refused');
      assert.match(err.message, /said no \(HTTP 409: The system is powered off\.\)/);
      return true;
    });
    assert.equal(machine.pid, undefined);
  });

  for (const auth of ['session', 'basic'] as const) {
    test(`a wrong password (${auth}) is auth_failed with the BMC's words, not retried, and never echoed`, async () => {
      const steps: PowerStep[] = [];
      const wrong = `wrong-${randomBytes(4).toString('hex')}`;
      await assert.rejects(runner(steps).run(new RedfishDriver(target({ auth, password: new BmcPassword(wrong) }), { requestTimeoutMs: 10_000 }), { action: 'status' }), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.equal(err.kind, 'auth_failed');
        assert.match(err.message, /refused the user name or password \(HTTP 401: Invalid (username or password|credentials or session)\.\)/);
        assert.ok(!err.message.includes(wrong) && !JSON.stringify(steps).includes(wrong));
        return true;
      });
      assert.equal(steps.length, 1);
    });
  }

  describe('TLS', () => {
    test('a self-signed certificate is refused by default, before any request is sent', async () => {
      const before = server.requests.length;
      await assert.rejects(new RedfishDriver(target({ tls: { verify: true } }), { requestTimeoutMs: 10_000 }).status(call()), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.equal(err.kind, 'tls_untrusted');
        assert.match(err.message, /certificate of 127\.0\.0\.1:\d+ is not trusted \(self[- ]signed certificate\); pin its fingerprint/);
        return true;
      });
      assert.equal(server.requests.length, before);
    });

    test('a wrong pin is refused before the password is sent', async () => {
      const before = server.requests.length;
      const other = createSelfSignedCertificate('other');
      await assert.rejects(new RedfishDriver(target({ tls: { verify: true, fingerprint: other.fingerprint256 } }), { requestTimeoutMs: 10_000 }).status(call()), (err: unknown) => err instanceof PowerError && err.kind === 'tls_untrusted' && /not the pinned one/.test(err.message));
      assert.equal(server.requests.length, before);
    });

    test('the certificate as CA bundle, or verify_tls false, is accepted', async () => {
      assert.equal(await statusOf(target({ tls: { verify: true, caBundle: cert.certPem } })), 'off');
      assert.equal(await statusOf(target({ tls: { verify: false } })), 'off');
    });

    test('a CA bundle that did not sign the certificate is refused', async () => {
      const other = createSelfSignedCertificate('other');
      await assert.rejects(new RedfishDriver(target({ tls: { verify: true, caBundle: other.certPem } }), { requestTimeoutMs: 10_000 }).status(call()), (err: unknown) => err instanceof PowerError && err.kind === 'tls_untrusted');
    });
  });

  describe('redfishtool (DMTF, Debian package) drives the same server and agrees', { skip: redfishtoolSkipReason() }, () => {
    const tool = (auth: 'Basic' | 'Session', ...args: string[]) => runRedfishtool({ port: server.port, username: 'root', password: PASSWORD, auth }, args);
    const toolPowerState = async () => (JSON.parse(await tool('Basic', 'Systems', '-I', '1')) as { PowerState: string }).PowerState;

    test('redfishtool reset On / our driver off / redfishtool boot override: both see the same state', async () => {
      const driver = () => new RedfishDriver(target(), { requestTimeoutMs: 10_000 });
      const status = async () => (await runner().run(driver(), { action: 'status' })).powerState;
      assert.equal(await toolPowerState(), 'Off');
      assert.equal(await status(), 'off');

      await tool('Session', 'Systems', '-I', '1', 'reset', 'On');
      assert.ok(machine.pid, 'redfishtool switched the machine on');
      assert.equal(await status(), 'on');
      assert.equal(await toolPowerState(), 'On');

      await runner().run(driver(), { action: 'off' });
      assert.equal(await toolPowerState(), 'Off');

      await tool('Basic', 'Systems', '-I', '1', 'setBootOverride', 'Once', 'Pxe');
      assert.deepEqual(server.bootOverride(), { enabled: 'Once', target: 'Pxe' });
      const d = driver();
      await d.setNextBootPxe(call());
      await d.close();
      const boot = (JSON.parse(await tool('Basic', 'Systems', '-I', '1')) as { Boot: Record<string, string> }).Boot;
      assert.equal(boot.BootSourceOverrideTarget, 'Pxe');
      assert.equal(boot.BootSourceOverrideEnabled, 'Once');
      assert.equal(server.openSessions(), 0, 'redfishtool and the driver both log out');
    });
  });
});
