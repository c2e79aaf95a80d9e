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
import { bootVm, consoleTail, type VmBoot } from './support/lab-vm.ts';

// A VM running build 1 is rolled to build 2 with `reboot: "agent"`: its image asks the boot server for
// a reboot request with its boot token, reboots (QEMU ends; the test starts it again, as the machine's
// firmware would) and reports build 2. A second rollout to a build whose image never reports times out,
// is rolled back, and the VM boots build 2 again. The stand-in image's hostname chooses its behaviour
// (`*-agent*` polls for reboot requests, `*-noreport` never reports; test/e2e/nix/standin-init.sh).

const skip = labSkipReason({ nix: true });
const TAG = 'E2EROLL1';

/** Resolves with `check`'s value once it has one, asking every 500 ms; rejects after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`e2e: ${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('rollouts end to end: agent reboots and a rollback', { skip }, () => {
  test('a VM is rolled from build 1 to build 2 by its agent; a rollout whose image never reports is rolled back and the VM boots build 2 again', { timeout: 1_500_000 }, async () => {
    const lab: LabServer = await startLabServer(freshSqlite());
    const diskDir = mkdtempSync(join(tmpdir(), 'metal-e2e-roll-'));
    const diskFile = join(diskDir, 'disk.raw');
    const input: LabMachineInput = { serial: TAG, cpus: 1, memoryMb: 512, diskGb: 1, manufacturer: 'Dell Inc.', product: 'PowerEdge R650' };
    let n = 0;
    const boot = (): Promise<VmBoot> => bootVm(`rollout-agent-${++n}`, { ...input, bootPort: lab.bootPort }, { timeoutMs: VM_TIMEOUT_MS, diskFile });
    const machine = async () => (await lab.api('GET', `/api/v1/machines/${TAG}`)).body;
    const rollout = async (id: number) => (await lab.api('GET', `/api/v1/rollouts/${id}`)).body;
    try {
      await bootUnknownMachine(lab, 'rollout-agent-0', { ...input, diskFile });
      const put = await lab.api('PUT', `/api/v1/machines/${TAG}`, { hostname: 'roll-agent', nixos_config: '{ ... }: { }\n', labels: { role: 'e2e-roll' } });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const first = await lab.api('POST', `/api/v1/machines/${TAG}/build`);
      assert.equal(first.status, 202, JSON.stringify(first.body));
      const build1: number = first.body.id;
      assert.equal((await lab.waitForBuild(build1, BUILD_TIMEOUT_MS)).body.status, 'success');

      // Build 1 runs, and its agent asks for reboot requests.
      const running1 = boot();
      running1.catch(() => {});
      await until('the VM reports build 1', async () => ((await machine()).booted_build_id === build1 ? true : undefined), VM_TIMEOUT_MS);

      // Rollout 1: a new configuration, rebooted by the agent.
      assert.equal((await lab.api('PUT', `/api/v1/machines/${TAG}`, { nixos_config: '{ ... }: { services.openssh.enable = true; }\n' })).status, 200);
      const started = await lab.api('POST', '/api/v1/rollouts', { selector: 'role=e2e-roll', canary: 1, batch_size: 1, health_timeout_seconds: 600, reboot: 'agent' });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      const r1: number = started.body.id;
      const vm1 = await running1;
      assert.match(vm1.console, /metal-standin: the boot server has another image for E2EROLL1; rebooting/, consoleTail(vm1.console));
      const build2: number = (await rollout(r1)).machines[0].to_build_id;
      assert.ok(build2 > build1);

      // The firmware boots again: build 2 comes up and reports; the rollout succeeds.
      const running2 = boot();
      running2.catch(() => {});
      const done1 = await until('rollout 1 ends', async () => {
        const r = await rollout(r1);
        return ['building', 'rolling', 'paused'].includes(r.state) ? undefined : r;
      }, VM_TIMEOUT_MS + BUILD_TIMEOUT_MS);
      assert.equal(done1.state, 'succeeded', JSON.stringify(done1));
      assert.equal((await machine()).booted_build_id, build2);

      // Rollout 2: an image that never reports (its hostname says so), with a short timeout.
      assert.equal((await lab.api('PUT', `/api/v1/machines/${TAG}`, { hostname: 'roll-agent-noreport' })).status, 200);
      const second = await lab.api('POST', '/api/v1/rollouts', { selector: 'role=e2e-roll', canary: 1, batch_size: 1, health_timeout_seconds: 120, reboot: 'agent' });
      assert.equal(second.status, 201, JSON.stringify(second.body));
      const r2: number = second.body.id;
      const vm2 = await running2;
      assert.match(vm2.console, new RegExp(`metal-standin: booted roll-agent build ${build2}\\b`), consoleTail(vm2.console));
      assert.match(vm2.console, /rebooting/, consoleTail(vm2.console));
      const build3: number = (await rollout(r2)).machines[0].to_build_id;
      const vm3 = await boot();
      assert.match(vm3.console, new RegExp(`metal-standin: booted roll-agent-noreport build ${build3}\\b`), consoleTail(vm3.console));
      assert.match(vm3.console, /this image never reports/, consoleTail(vm3.console));
      const done2 = await until('rollout 2 ends', async () => {
        const r = await rollout(r2);
        return ['building', 'rolling', 'paused'].includes(r.state) ? undefined : r;
      }, 300_000);
      assert.equal(done2.state, 'rolled_back', JSON.stringify(done2));
      assert.equal(done2.machines[0].state, 'rolled_back');

      // Booted again, the VM gets build 2 back and reports it.
      const vm4Running = boot();
      vm4Running.catch(() => {});
      await until('the VM reports build 2 again', async () => ((await machine()).booted_build_id === build2 ? true : undefined), VM_TIMEOUT_MS);
      const vm4 = await vm4Running;
      assert.match(vm4.console, new RegExp(`metal-standin: booted roll-agent build ${build2}\\b`), consoleTail(vm4.console));
      assert.match(vm4.console, /metal-standin: booted report accepted/, consoleTail(vm4.console));
    } finally {
      await lab.stop();
      rmSync(diskDir, { recursive: true, force: true });
    }
  });
});
