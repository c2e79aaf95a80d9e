import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { enrollmentPayload } from '../support/context.ts';
import { startApiServer, type ApiServer } from '../support/api-server.ts';
import { runCli } from '../support/cli-process.ts';
import { allCommandLines } from '../support/power/cmdline-watch.ts';
import { ipmiSimSkipReason, startIpmiSimulator, type IpmiSimulator } from '../support/power/ipmi-simulator.ts';

const STANDIN_ENTRY = new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url).pathname;
const skip = ipmiSimSkipReason();
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

describe('metal power and metal bmc against a real server and ipmi_sim', { skip, timeout: 180_000 }, () => {
  let metal: ApiServer;
  let sim: IpmiSimulator;
  const dir = mkdtempSync(join(tmpdir(), 'metal-power-cli-'));
  const passwordFile = join(dir, 'bmc-pw');
  const env = () => ({ XDG_CONFIG_HOME: join(dir, 'unused'), METAL_URL: metal.url, METAL_TOKEN: metal.adminToken });

  before(async () => {
    sim = await startIpmiSimulator({ password: PASSWORD, machine: ['sleep', '600'] });
    metal = await startApiServer(STANDIN_ENTRY, { METAL_POWER_POLL_INTERVAL: '10', METAL_POWER_TIMEOUT: '5' });
    for (const tag of ['CLIPWR1', 'CLIPWR2']) {
      const r = await fetch(`${metal.url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload(tag)) });
      assert.equal(r.status, 201);
    }
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  });
  after(async () => {
    await metal?.stop();
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('metal bmc set reads the password from a file; show never prints it', async () => {
    const set = await runCli(['bmc', 'set', 'CLIPWR1', '--type', 'ipmi', '--address', `127.0.0.1:${sim.port}`, '--user', 'admin', '--password-file', passwordFile], env());
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`bmc: +ipmi 127\\.0\\.0\\.1:${sim.port}`));
    const show = await runCli(['bmc', 'show', 'CLIPWR1', '--json'], env());
    assert.equal(show.code, 0, show.stderr);
    assert.equal(JSON.parse(show.stdout).username, 'admin');
    assert.ok(!set.stdout.includes(PASSWORD) && !show.stdout.includes(PASSWORD));
    const redfishOnly = await runCli(['bmc', 'set', 'CLIPWR1', '--type', 'ipmi', '--no-verify-tls'], env());
    assert.equal(redfishOnly.code, 1);
    assert.match(redfishOnly.stderr, /apply to --type redfish only/);
  });

  test('the poller of the api role reads the state without anyone asking', async () => {
    const end = Date.now() + 40_000;
    for (;;) {
      const state = await metal.api<{ power_state: string; checked_at: string | null }>('GET', '/api/v1/machines/CLIPWR1/power');
      if (state.checked_at !== null) {
        assert.equal(state.power_state, 'off');
        break;
      }
      if (Date.now() > end) assert.fail('the poller never checked the BMC');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  test('metal power on / status / off change the simulated machine; off asks for --yes without a terminal', async () => {
    const on = await runCli(['power', 'on', 'CLIPWR1'], env(), { timeoutMs: 120_000 });
    assert.equal(on.code, 0, on.stderr);
    assert.equal(on.stdout, 'CLIPWR1: on\n');
    assert.ok(sim.machinePid(), 'the machine process runs');
    assert.ok(!allCommandLines().some((line) => line.includes(PASSWORD)));

    const status = await runCli(['power', 'status', 'CLIPWR1', '--json'], env(), { timeoutMs: 60_000 });
    assert.equal(JSON.parse(status.stdout).power_state, 'on');

    const refused = await runCli(['power', 'off', 'CLIPWR1'], env());
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not powering off CLIPWR1 without --yes/);
    assert.ok(sim.machinePid(), 'still on');

    const off = await runCli(['power', 'off', 'CLIPWR1', '--yes'], env(), { timeoutMs: 120_000 });
    assert.equal(off.code, 0, off.stderr);
    assert.equal(off.stdout, 'CLIPWR1: off\n');
    assert.equal(sim.machinePid(), undefined);
  });

  test('several machines at once: one line each, a failure named and the exit status 1', async () => {
    const r = await runCli(['power', 'status', 'CLIPWR1', 'CLIPWR2'], env(), { timeoutMs: 120_000 });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /CLIPWR1 +off/);
    assert.match(r.stdout, /CLIPWR2 +failed +conflict: machine CLIPWR2 has no BMC/);
    assert.match(r.stderr, /1 of 2 machines failed/);
  });

  test('errors from the BMC reach the terminal: a wrong password', async () => {
    writeFileSync(passwordFile, 'not-the-password\n');
    assert.equal((await runCli(['bmc', 'set', 'CLIPWR1', '--type', 'ipmi', '--password-file', passwordFile], env())).code, 0);
    const r = await runCli(['power', 'on', 'CLIPWR1'], env(), { timeoutMs: 120_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused the user name or password/);
  });

  test('metal bmc sets: a credential set named once, used by a machine, not deleted while in use', async () => {
    const setFile = join(dir, 'set-pw');
    writeFileSync(setFile, `${PASSWORD}\n`, { mode: 0o600 });
    const add = await runCli(['bmc', 'sets', 'add', 'sim-rack', '--user', 'admin', '--password-file', setFile], env());
    assert.equal(add.code, 0, add.stderr);
    const use = await runCli(['bmc', 'set', 'CLIPWR2', '--type', 'ipmi', '--address', `127.0.0.1:${sim.port}`, '--credential-set', 'sim-rack'], env());
    assert.equal(use.code, 0, use.stderr);
    assert.match(use.stdout, /user: +admin \(credential set sim-rack\)/);
    const status = await runCli(['power', 'status', 'CLIPWR2'], env(), { timeoutMs: 60_000 });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^CLIPWR2: (on|off)\n$/);
    const ls = await runCli(['bmc', 'sets', 'ls'], env());
    assert.match(ls.stdout, /sim-rack +admin +1 /);
    assert.ok(!ls.stdout.includes(PASSWORD));
    const rm = await runCli(['bmc', 'sets', 'rm', 'sim-rack'], env());
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /credential set sim-rack is used by 1 machine/);
  });
});
