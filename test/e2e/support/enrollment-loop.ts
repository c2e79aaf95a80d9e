import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabMachineInput } from '../../../src/registration/lab/lab-machine.ts';
import type { LabServer } from './lab-server.ts';
import { bootVm, consoleReport, type VmBoot } from './lab-vm.ts';

/** Bound on one boot of a VM under TCG on a busy 2-core machine (a boot takes 10-20 s). */
export const VM_TIMEOUT_MS = 240_000;
/** Bound on one build of the stand-in entry (about a second when idle). */
export const BUILD_TIMEOUT_MS = 180_000;

/**
 * First boot of a machine nobody registered: it PXE-boots the registration image, the agent enrolls it
 * and powers off. Checks the enrolled machine against what QEMU was given and returns it.
 */
export async function bootUnknownMachine(lab: LabServer, name: string, input: LabMachineInput & { diskFile?: string }) {
  const before = await lab.api('GET', `/api/v1/machines/${input.serial}`);
  assert.equal(before.status, 404, `${input.serial} must be unknown before its first boot`);

  const boot = await bootVm(`${name}-1-registration`, { ...input, bootPort: lab.bootPort }, { timeoutMs: VM_TIMEOUT_MS, diskFile: input.diskFile });
  const { machine } = boot;
  assert.match(boot.console, /metal-agent: ENROLLED/, `the agent reported success\n${consoleReport(boot.console)}`);

  const found = await lab.api('GET', `/api/v1/machines/${machine.serial}`);
  assert.equal(found.status, 200, `${machine.serial} enrolled\n${consoleReport(boot.console)}`);
  const m = found.body;
  assert.equal(m.service_tag, machine.serial);
  assert.equal(m.status, 'enrolled');
  assert.equal(m.mac_address, machine.mac);
  const hw = m.hardware;
  assert.equal(hw.manufacturer, machine.manufacturer);
  assert.equal(hw.model, machine.product);
  assert.equal(hw.serial, machine.serial);
  assert.equal(hw.cpu.threads, machine.cpus, 'CPU threads = -smp');
  assert.equal(hw.cpu.architecture, 'x86_64');
  assert.match(hw.bios?.vendor ?? '', machine.uefi ? /OVMF/ : /SeaBIOS/, `the firmware asked for, not ${JSON.stringify(hw.bios)}`);
  const given = machine.memoryMb * 1024 * 1024;
  assert.ok(hw.memory.total_bytes <= given && hw.memory.total_bytes > given * 0.85, `memory ${hw.memory.total_bytes} is close to -m ${machine.memoryMb}M`);
  assert.deepEqual(
    hw.disks.map((d: { name: string; size_bytes: number }) => [d.name, d.size_bytes]),
    [['vda', machine.diskGb * 1024 ** 3]],
  );
  const nic = hw.nics.find((n: { mac: string }) => n.mac === machine.mac);
  assert.ok(nic, `a NIC with ${machine.mac} among ${JSON.stringify(hw.nics)}`);
  assert.equal(nic.driver, 'virtio_net');
  return { boot, machine: m };
}

/**
 * The whole loop for one machine: first boot enrolls it; it is configured and built through the API
 * with the real nix-build on the stand-in entry; the second boot gets its own image, which reports
 * booted with the right build. With `bootBeforeBuild`, the second boot starts before the build is
 * requested: the VM is held (its iPXE sleeps and asks again) and boots the image once it is published.
 */
export async function runWholeLoop(lab: LabServer, name: string, input: LabMachineInput, hostname: string, options: { bootBeforeBuild?: boolean; eachBoot?: (boot: VmBoot) => void } = {}): Promise<void> {
  const diskDir = mkdtempSync(join(tmpdir(), 'metal-e2e-disk-'));
  try {
    const diskFile = join(diskDir, 'disk.raw');
    const { machine, boot: first } = await bootUnknownMachine(lab, name, { ...input, diskFile });
    options.eachBoot?.(first);
    const tag = machine.service_tag as string;

    const nixosConfig = `{ ... }: {\n  networking.hostName = "${hostname}";\n  services.openssh.enable = true;\n}\n`;
    const configured = await lab.api('PUT', `/api/v1/machines/${tag}`, { hostname, nixos_config: nixosConfig });
    assert.equal(configured.status, 200, JSON.stringify(configured.body));
    assert.equal(configured.body.status, 'configured');

    const secondBoot = () => bootVm(`${name}-2-own-image`, { ...input, bootPort: lab.bootPort }, { timeoutMs: VM_TIMEOUT_MS, diskFile });
    let early: Promise<VmBoot> | undefined;
    if (options.bootBeforeBuild) {
      early = secondBoot();
      early.catch(() => {}); // awaited below; failures are reported there
      await waitUntilSeenAgain(lab, tag, configured.body.last_seen_at, early);
    }

    const requested = await lab.api('POST', `/api/v1/machines/${tag}/build`);
    assert.equal(requested.status, 202, JSON.stringify(requested.body));
    assert.equal(requested.body.status, 'pending');
    const buildId: number = requested.body.id;
    const build = await lab.waitForBuild(buildId, BUILD_TIMEOUT_MS);
    assert.equal(build.body.status, 'success', `build ${buildId}: ${build.body.error}\n${build.body.log_output}`);
    assert.equal(build.body.config, nixosConfig);
    const ready = await lab.api('GET', `/api/v1/machines/${tag}`);
    assert.equal(ready.body.status, 'ready');
    if (!early) assert.equal(ready.body.booted_build_id, null, 'nothing booted yet');

    const second: VmBoot = await (early ?? secondBoot());
    options.eachBoot?.(second);
    assert.match(second.console, new RegExp(`metal-standin: booted ${hostname} build ${buildId}\\b`), `the VM booted its own image\n${consoleReport(second.console)}`);
    assert.match(second.console, /metal-standin: booted report accepted/, consoleReport(second.console));
    assert.doesNotMatch(second.console, /metal-agent:/, 'the registration image did not run again');

    const booted = await lab.api('GET', `/api/v1/machines/${tag}`);
    assert.equal(booted.status, 200);
    assert.equal(booted.body.booted_build_id, buildId);
    assert.ok(Date.parse(booted.body.booted_at) > Date.parse(build.body.completed_at), 'booted after the build completed');
    const events = await lab.api('GET', `/api/v1/machines/${tag}/events`);
    const bootedEvent = events.body.items.find((e: { kind: string }) => e.kind === 'machine.booted');
    assert.ok(bootedEvent, JSON.stringify(events.body));
    assert.equal(bootedEvent.actor, `machine:${tag}`);
    assert.equal(bootedEvent.build_id, buildId);
  } finally {
    rmSync(diskDir, { recursive: true, force: true });
  }
}

/** Resolves once the machine asked the boot server for its script again (its last_seen_at moved on). */
async function waitUntilSeenAgain(lab: LabServer, tag: string, lastSeen: string | null, vm: Promise<VmBoot>): Promise<void> {
  let vmEnded = false;
  void vm.then(
    () => (vmEnded = true),
    () => (vmEnded = true),
  );
  const deadline = Date.now() + VM_TIMEOUT_MS;
  for (;;) {
    const m = await lab.api('GET', `/api/v1/machines/${tag}`);
    if (m.body.last_seen_at !== lastSeen) return;
    if (vmEnded) throw new Error(`e2e: the VM of ${tag} ended before it asked for a boot script: ${String(await vm.catch((e: Error) => e.message))}`);
    if (Date.now() > deadline) throw new Error(`e2e: the VM of ${tag} did not ask for a boot script in ${VM_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
