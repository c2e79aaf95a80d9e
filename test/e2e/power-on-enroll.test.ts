import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BmcPassword, parseFingerprint } from '../../src/power/bmc-target.ts';
import { createPowerDriver } from '../../src/power/create-power-driver.ts';
import type { PowerState } from '../../src/power/power-driver.ts';
import { PowerRunner, type PowerStep } from '../../src/power/power-runner.ts';
import { ipmiSimSkipReason, startIpmiSimulator } from '../support/power/ipmi-simulator.ts';
import { ProcessMachine } from '../support/power/process-machine.ts';
import { startRedfishTestServer } from '../support/power/redfish-test-server.ts';
import { createSelfSignedCertificate, opensslSkipReason } from '../support/power/self-signed-cert.ts';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { startLabServer, type LabServer } from './support/lab-server.ts';
import { CONSOLE_LOG_DIR, consoleReport } from './support/lab-vm.ts';
import { powerLabVmCommand } from './support/power-vm.ts';

const skip = labSkipReason() ?? ipmiSimSkipReason() ?? opensslSkipReason();
const skipBuild = skip ?? labSkipReason({ nix: true });
/** Bound on a VM's boot to enrollment under TCG on a busy 2-core machine (a boot takes 10-20 s). */
const BOOT_TIMEOUT_MS = 240_000;
/** Bound on one build of the stand-in entry (about a second when idle). */
const BUILD_TIMEOUT_MS = 180_000;

function newRunner(steps: PowerStep[]) {
  return new PowerRunner({ concurrency: 2, callTimeoutMs: 15_000, settleTimeoutMs: 15_000, settleIntervalMs: 500, onStep: (s) => steps.push(s) });
}

/** Polls `check` every second until it is true; fails naming `what` (and the console) after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms: number, consoleLog: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`gave up waiting for ${what}\n${existsSync(consoleLog) ? consoleReport(readFileSync(consoleLog, 'utf8')) : '(no console)'}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/**
 * Powers an unknown machine on through its BMC and checks that it PXE-boots, enrolls, and powers itself
 * off (the BMC then reports off).
 */
async function powerOnAndEnroll(lab: LabServer, serial: string, consoleLog: string, status: () => Promise<PowerState>, powerOn: () => Promise<PowerState>): Promise<void> {
  assert.equal((await lab.api('GET', `/api/v1/machines/${serial}`)).status, 404);
  assert.equal(await status(), 'off', 'the machine starts switched off');
  assert.equal(await powerOn(), 'on');
  await until(`${serial} to enroll`, async () => (await lab.api('GET', `/api/v1/machines/${serial}`)).status === 200, BOOT_TIMEOUT_MS, consoleLog);
  const machine = (await lab.api('GET', `/api/v1/machines/${serial}`)).body;
  assert.equal(machine.status, 'enrolled');
  assert.equal(machine.hardware.serial, serial);
  await until('the machine to power itself off after enrolling', async () => (await status()) === 'off', 120_000, consoleLog);
  assert.match(readFileSync(consoleLog, 'utf8'), /metal-agent: ENROLLED/);
}

describe('power on through the BMC: an unknown QEMU machine PXE-boots and enrolls', { skip }, () => {
  test('IPMI: ipmi_sim whose power on starts the VM', { timeout: 420_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    const workDir = mkdtempSync(join(tmpdir(), 'metal-e2e-power-'));
    mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
    const consoleLog = join(CONSOLE_LOG_DIR, 'power-ipmi.log');
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const serial = 'E2EIPMI01';
    const sim = await startIpmiSimulator({ password, machine: powerLabVmCommand({ serial, bootPort: lab.bootPort, memoryMb: 768, diskGb: 1 }, workDir, consoleLog) });
    try {
      const steps: PowerStep[] = [];
      const runner = newRunner(steps);
      const driver = () => createPowerDriver({ type: 'ipmi', address: { host: sim.host, port: sim.port }, username: sim.username, password: new BmcPassword(password) }, { callTimeoutMs: 15_000 });
      await powerOnAndEnroll(
        lab,
        serial,
        consoleLog,
        async () => (await runner.run(driver(), { action: 'status' })).powerState,
        async () => (await runner.run(driver(), { action: 'on', bootDevice: 'pxe' })).powerState,
      );
      assert.ok(steps.some((s) => s.step === 'power_on' && s.outcome === 'ok'));
      assert.ok(!JSON.stringify(steps).includes(password));
    } finally {
      await sim.stop();
      await lab.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  test('Redfish: the Redfish test server switching the VM, with next boot PXE', { timeout: 420_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    const workDir = mkdtempSync(join(tmpdir(), 'metal-e2e-power-'));
    mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
    const consoleLog = join(CONSOLE_LOG_DIR, 'power-redfish.log');
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const serial = 'E2ERF01';
    const command = powerLabVmCommand({ serial, bootPort: lab.bootPort, memoryMb: 768, diskGb: 1 }, workDir, consoleLog);
    const machine = new ProcessMachine(() => command);
    const cert = createSelfSignedCertificate();
    const server = await startRedfishTestServer({ keyPem: cert.keyPem, certPem: cert.certPem, username: 'root', password, machine });
    try {
      const runner = newRunner([]);
      const driver = () =>
        createPowerDriver(
          { type: 'redfish', address: { host: '127.0.0.1', port: server.port }, username: 'root', password: new BmcPassword(password), tls: { verify: true, fingerprint: parseFingerprint(cert.fingerprint256) }, auth: 'session' },
          { callTimeoutMs: 15_000 },
        );
      await powerOnAndEnroll(
        lab,
        serial,
        consoleLog,
        async () => (await runner.run(driver(), { action: 'status' })).powerState,
        async () => (await runner.run(driver(), { action: 'on', bootDevice: 'pxe' })).powerState,
      );
      assert.deepEqual(machine.boots, ['pxe'], 'the BMC was asked for a network boot');
      assert.equal(server.openSessions(), 0);
    } finally {
      await machine.powerOff();
      await server.close();
      await lab.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});

describe('into the new image through the BMC: reboot on publish, through the API', { skip: skipBuild }, () => {
  test('IPMI: enroll by power on, set the BMC through the API with reboot_on_publish, build: the machine is cycled into its image, booted report recorded', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    const workDir = mkdtempSync(join(tmpdir(), 'metal-e2e-power-'));
    mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
    const consoleLog = join(CONSOLE_LOG_DIR, 'power-ipmi-new-image.log');
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const serial = 'E2EIPMI02';
    const sim = await startIpmiSimulator({ password, machine: powerLabVmCommand({ serial, bootPort: lab.bootPort, memoryMb: 768, diskGb: 1 }, workDir, consoleLog) });
    try {
      // An unknown machine has no record to hold its BMC yet: the first power on goes to the BMC directly.
      const runner = newRunner([]);
      const driver = () => createPowerDriver({ type: 'ipmi', address: { host: sim.host, port: sim.port }, username: sim.username, password: new BmcPassword(password) }, { callTimeoutMs: 15_000 });
      const status = async () => (await runner.run(driver(), { action: 'status' })).powerState;
      await powerOnAndEnroll(lab, serial, consoleLog, status, async () => (await runner.run(driver(), { action: 'on', bootDevice: 'pxe' })).powerState);

      // From here on everything goes through the API.
      const bmc = await lab.api('PUT', `/api/v1/machines/${serial}/bmc`, { type: 'ipmi', address: `${sim.host}:${sim.port}`, username: sim.username, password, reboot_on_publish: true });
      assert.equal(bmc.status, 200, JSON.stringify(bmc.body));
      const off = await lab.api('POST', `/api/v1/machines/${serial}/power`, { action: 'status' });
      assert.deepEqual([off.status, off.body.power_state], [200, 'off']);

      const configured = await lab.api('PUT', `/api/v1/machines/${serial}`, { hostname: 'power-01', nixos_config: '{ ... }: {\n  networking.hostName = "power-01";\n}\n' });
      assert.equal(configured.status, 200, JSON.stringify(configured.body));
      const requested = await lab.api('POST', `/api/v1/machines/${serial}/build`);
      assert.equal(requested.status, 202, JSON.stringify(requested.body));
      const buildId: number = requested.body.id;
      const build = await lab.waitForBuild(buildId, BUILD_TIMEOUT_MS);
      assert.equal(build.body.status, 'success', `build ${buildId}: ${build.body.error}`);

      // Reboot on publish: next boot PXE and a cycle (a power on, as the machine is off), by nobody's hand.
      await until('the booted report of the new image', async () => (await lab.api('GET', `/api/v1/machines/${serial}`)).body.booted_build_id === buildId, BOOT_TIMEOUT_MS, consoleLog);
      assert.match(readFileSync(consoleLog, 'utf8'), new RegExp(`metal-standin: booted power-01 build ${buildId}\\b`));
      const events = (await lab.api('GET', `/api/v1/machines/${serial}/events?limit=200`)).body.items as Array<{ kind: string; build_id: number | null; actor: string; message: string }>;
      const reboot = events.filter((e) => e.build_id === buildId && e.kind.startsWith('power.')).map((e) => e.kind).reverse();
      assert.equal(reboot[0], 'power.reboot_on_publish', reboot.join(' '));
      assert.equal(reboot.at(-1), 'power.action', reboot.join(' '));
      assert.ok(events.some((e) => e.kind === 'power.step' && /power_on ok/.test(e.message)));
      assert.equal((await lab.api('GET', `/api/v1/machines/${serial}/power`)).body.power_state, 'on');
      assert.ok(!JSON.stringify(events).includes(password));
    } finally {
      await sim.stop();
      await lab.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});
