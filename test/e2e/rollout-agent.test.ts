import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import type { LabMachineInput } from '../../src/registration/lab/lab-machine.ts';
import { freshSqlite } from '../support/databases.ts';
import { BUILD_TIMEOUT_MS, VM_TIMEOUT_MS, bootUnknownMachine } from './support/enrollment-loop.ts';
import { startLabServer, type LabServer } from './support/lab-server.ts';
import { bootVm, consoleReport, type VmBoot } from './support/lab-vm.ts';

// A VM running build 1 is rolled to build 2 with `reboot: "agent"`: its image asks the boot server for
// a reboot request with its boot token, reboots (QEMU ends; the test starts it again, as the machine's
// firmware would) and reports build 2. A second rollout to a build whose image never reports times out,
// is rolled back, and the VM boots build 2 again. The stand-in image's hostname chooses its behaviour
// (`*-agent*` polls for reboot requests, `*-noreport` never reports; test/e2e/nix/standin-init.sh).

const skip = labSkipReason({ nix: true });
const TAG = 'E2EROLL1';
/**
 * How long an `*-agent*` stand-in asks for a reboot request after its report before it powers off
 * (75 polls, 2 s apart: test/e2e/nix/standin-init.sh). A boot that runs it to the end needs this on
 * top of VM_TIMEOUT_MS, which bounds the boot itself.
 */
const AGENT_POLL_MS = 150_000;

/**
 * Resolves with `check`'s value once it has one, asking every 500 ms; rejects after `timeoutMs`
 * with `state()` (what the server says now) in the message, or as soon as `vm`, the boot that should
 * bring the value about, ended without it (with that boot's own error or console).
 */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, state: () => Promise<string>, vm?: Promise<VmBoot>): Promise<T> {
  let outcome: { boot?: VmBoot; error?: Error } | undefined;
  vm?.then(
    (boot) => (outcome = { boot }),
    (error: Error) => (outcome = { error }),
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vmEnded = outcome; // read before the check, so a value the boot brought about just before it ended still counts
    const value = await check();
    if (value !== undefined) return value;
    if (vmEnded?.error) throw new Error(`e2e: ${what}: its VM failed first: ${vmEnded.error.message}`);
    if (vmEnded?.boot) throw new Error(`e2e: ${what}: its VM powered off first\n${consoleReport(vmEnded.boot.console)}\n${await state()}`);
    if (Date.now() > deadline) throw new Error(`e2e: ${what}: not within ${timeoutMs} ms\n${await state()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('rollouts end to end: agent reboots and a rollback', { skip }, () => {
  test('a VM is rolled from build 1 to build 2 by its agent; a rollout whose image never reports is rolled back and the VM boots build 2 again', { timeout: 1_500_000 }, async () => {
    const lab: LabServer = await startLabServer(freshSqlite());
    const diskDir = mkdtempSync(join(tmpdir(), 'metal-e2e-roll-'));
    const diskFile = join(diskDir, 'disk.raw');
    const input: LabMachineInput = { serial: TAG, cpus: 1, memoryMb: 512, diskGb: 1, manufacturer: 'Dell Inc.', product: 'PowerEdge R650' };
    const machine = async () => (await lab.api('GET', `/api/v1/machines/${TAG}`)).body;
    const rollout = async (id: number) => (await lab.api('GET', `/api/v1/rollouts/${id}`)).body;
    const rollouts: number[] = [];
    /** What the server says about the machine and the rollouts so far, for failure messages. */
    const state = async (): Promise<string> => {
      const lines = ['--- server state ---'];
      for (const id of rollouts) {
        const r = await rollout(id);
        lines.push(`rollout ${id}: ${r.state}, wave ${r.wave} of ${r.waves}, health timeout ${r.health_timeout_seconds} s${r.message ? `: ${r.message}` : ''}`);
        for (const m of r.machines) {
          lines.push(`  ${m.service_tag}: ${m.state}, build ${m.from_build_id} -> ${m.to_build_id}, started ${m.started_at}, deadline ${m.deadline_at}, finished ${m.finished_at}${m.message ? `: ${m.message}` : ''}`);
        }
      }
      const m = await machine();
      const storage = lab.server.ctx.storage;
      lines.push(
        `machine ${TAG}: ${m.status}, hostname ${m.hostname}, points at build ${await storage.machines.imageBuildId(m.id)}, reboot requested ${await storage.machines.rebootRequestedAt(m.id)}, booted build ${m.booted_build_id} at ${m.booted_at}, last seen ${m.last_seen_at}`,
      );
      const events = (await lab.api('GET', `/api/v1/machines/${TAG}/events?limit=12`)).body.items as Array<{ created_at: string; kind: string; message: string }>;
      lines.push('its last events, newest first:', ...events.map((e) => `  ${e.created_at} ${e.kind}: ${e.message}`), '---');
      return lines.join('\n');
    };
    let n = 0;
    /** One boot of the machine, as its firmware would; `agent`: its image may ask for reboot requests to the end. */
    const boot = (agent: boolean, stopWhen?: RegExp): Promise<VmBoot> =>
      bootVm(`rollout-agent-${++n}`, { ...input, bootPort: lab.bootPort }, { timeoutMs: VM_TIMEOUT_MS + (agent ? AGENT_POLL_MS : 0), diskFile, describe: state, stopWhen });
    const startRollout = async (body: object): Promise<number> => {
      const started = await lab.api('POST', '/api/v1/rollouts', body);
      assert.equal(started.status, 201, JSON.stringify(started.body));
      rollouts.push(started.body.id);
      return started.body.id;
    };
    const ended = (id: number) => async () => {
      const r = await rollout(id);
      return ['building', 'rolling', 'paused'].includes(r.state) ? undefined : r;
    };
    try {
      await bootUnknownMachine(lab, 'rollout-agent-0', { ...input, diskFile });
      const put = await lab.api('PUT', `/api/v1/machines/${TAG}`, { hostname: 'roll-agent', nixos_config: '{ ... }: { }\n', labels: { role: 'e2e-roll' } });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const first = await lab.api('POST', `/api/v1/machines/${TAG}/build`);
      assert.equal(first.status, 202, JSON.stringify(first.body));
      const build1: number = first.body.id;
      assert.equal((await lab.waitForBuild(build1, BUILD_TIMEOUT_MS)).body.status, 'success');

      // Build 1 runs, and its agent asks for reboot requests.
      const running1 = boot(true);
      running1.catch(() => {});
      await until('the VM reports build 1', async () => ((await machine()).booted_build_id === build1 ? true : undefined), VM_TIMEOUT_MS, state, running1);

      // Rollout 1: a new configuration, rebooted by the agent.
      assert.equal((await lab.api('PUT', `/api/v1/machines/${TAG}`, { nixos_config: '{ ... }: { services.openssh.enable = true; }\n' })).status, 200);
      const r1 = await startRollout({ selector: 'role=e2e-roll', canary: 1, batch_size: 1, health_timeout_seconds: 600, reboot: 'agent' });
      const vm1 = await running1;
      assert.match(vm1.console, /metal-standin: the boot server has another image for E2EROLL1; rebooting/, `${consoleReport(vm1.console)}\n${await state()}`);
      const build2: number = (await rollout(r1)).machines[0].to_build_id;
      assert.ok(build2 > build1);

      // The firmware boots again: build 2 comes up and reports; the rollout succeeds.
      const running2 = boot(true);
      running2.catch(() => {});
      const done1 = await until('rollout 1 ends', ended(r1), VM_TIMEOUT_MS + BUILD_TIMEOUT_MS, state, running2);
      assert.equal(done1.state, 'succeeded', JSON.stringify(done1));
      assert.equal((await machine()).booted_build_id, build2);

      // Rollout 2: an image that never reports (its hostname says so). Its health timeout runs from
      // the wave's start, before vm2 reboots and vm3 asks for its script: vm3 must get build 3 before
      // the rollback points the machine at build 2 again (it asked within 30 s on a loaded host).
      assert.equal((await lab.api('PUT', `/api/v1/machines/${TAG}`, { hostname: 'roll-agent-noreport' })).status, 200);
      const r2 = await startRollout({ selector: 'role=e2e-roll', canary: 1, batch_size: 1, health_timeout_seconds: 120, reboot: 'agent' });
      const vm2 = await running2;
      assert.match(vm2.console, new RegExp(`metal-standin: booted roll-agent build ${build2}\\b`), `${consoleReport(vm2.console)}\n${await state()}`);
      assert.match(vm2.console, /metal-standin: the boot server has another image for E2EROLL1; rebooting/, `${consoleReport(vm2.console)}\n${await state()}`);
      const build3: number = (await rollout(r2)).machines[0].to_build_id;
      const vm3 = await boot(false);
      assert.match(vm3.console, new RegExp(`metal-standin: booted roll-agent-noreport build ${build3}\\b`), `${consoleReport(vm3.console)}\n${await state()}`);
      assert.match(vm3.console, /this image never reports/, consoleReport(vm3.console));
      const done2 = await until('rollout 2 ends', ended(r2), 300_000, state);
      assert.equal(done2.state, 'rolled_back', JSON.stringify(done2));
      assert.equal(done2.machines[0].state, 'rolled_back');

      // Booted again, the VM gets build 2 back and reports it (then it would ask for reboot requests
      // in vain for AGENT_POLL_MS: it is stopped once its console shows the report accepted).
      const vm4Running = boot(true, /metal-standin: booted report accepted/);
      vm4Running.catch(() => {});
      await until('the VM reports build 2 again', async () => ((await machine()).booted_build_id === build2 ? true : undefined), VM_TIMEOUT_MS, state, vm4Running);
      const vm4 = await vm4Running;
      assert.match(vm4.console, new RegExp(`metal-standin: booted roll-agent build ${build2}\\b`), consoleReport(vm4.console));
      assert.match(vm4.console, /metal-standin: booted report accepted/, consoleReport(vm4.console));
    } finally {
      await lab.stop();
      rmSync(diskDir, { recursive: true, force: true });
    }
  });
});
