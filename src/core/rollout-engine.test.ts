import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { macOfTag } from '../../test/support/mac-of-tag.ts';
import { BuildLifecycle } from './build-lifecycle.ts';
import { createLogger } from './logger.ts';
import { MachineImageService } from './machine-images.ts';
import { MachineService } from './machine-service.ts';
import { Notifier } from './notifier.ts';
import { RolloutEngine } from './rollout-engine.ts';
import { RolloutService } from './rollout-service.ts';
import type { Actor, BootHealth } from './types.ts';

const OPERATOR: Actor = { kind: 'user', name: 'alice', role: 'operator' };

/** Lets a lease of `ms` expire on the clock the engine compares against. */
async function outlive(ms: number): Promise<void> {
  const until = Date.now() + ms + 5;
  while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, until - Date.now()));
}

/** The core over memory: machines with published first builds, an engine factory, fakes that record. */
async function setup(tags: string[]) {
  const storage = new MemoryStorage();
  const notifier = new Notifier();
  const builds = new BuildLifecycle(storage, notifier);
  const links: Array<[string, number | null]> = [];
  const images = {
    async removeMachineImages() {},
    async pointMachineAt(tag: string, id: number | null) {
      links.push([tag, id]);
    },
  };
  const machines = new MachineService(storage, notifier, images, builds);
  const machineImages = new MachineImageService(storage, notifier, images, machines);
  const cycled: number[] = [];
  const logger = createLogger('silent');
  const queue = builds.queueFor({ kind: 'builder', name: 'b' }, 60_000);
  /** Runs every pending build to success (or failure for `fail`), as a builder would. */
  const buildAll = async (fail: number[] = []) => {
    for (let row = await queue.claimNext(); row; row = await queue.claimNext()) {
      if (fail.includes(row.machine_id)) await queue.fail(row.id, 'nix-build exited with code 1');
      else await queue.succeed(row.id, { storePath: `/nix/store/${row.id}`, artifactUrl: 'http://x/', note: `build ${row.id} published` });
    }
  };
  const ids: number[] = [];
  for (const tag of tags) {
    const { machine } = await machines.enroll({ service_tag: tag, mac_address: macOfTag(tag), hardware: {} }, { kind: 'machine', name: tag });
    await machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }', labels: { role: 'web' } }, OPERATOR);
    await machines.requestBuild(tag, OPERATOR);
    ids.push(machine.id);
  }
  await buildAll();
  const engine = (owner: string, leaseMs = 60_000) =>
    new RolloutEngine({ storage, notifier, builds, machineImages, power: { powerCycle: async (id) => void cycled.push(id) }, logger, owner, leaseMs });
  const service = (e: RolloutEngine) => new RolloutService(storage, notifier, e);
  /** The machine reports the build it now points at (its new image came up). */
  const boot = async (machineId: number, health?: BootHealth) => {
    const tag = (await storage.machines.findById(machineId))!.service_tag;
    const image = (await storage.machines.imageBuildId(machineId))!;
    const secret = (await storage.builds.findRecord(image))!.boot_token;
    await builds.recordBooted(tag, { build_id: image, token: await builds.issueBootToken(image, secret), ...(health ? { health } : {}) });
  };
  return { storage, machines, builds, links, cycled, buildAll, engine, service, boot, ids };
}

describe('rollout engine (in memory)', () => {
  test('a build whose profile has a health check: a report with a passing result is healthy, one without a result is not', async () => {
    const s = await setup(['H1', 'H2', 'H3']);
    await s.storage.profiles.insert('checked', { description: null, nixos_config: '{ ... }: { }', hostname_pattern: null, kernel_params: [], auto_build: false, health_check: 'systemctl is-active nginx', skip_boot_check: false }, new Date().toISOString());
    for (const tag of ['H1', 'H2', 'H3']) await s.machines.update(tag, { profile: 'checked' }, OPERATOR);
    const e = s.engine('server-h');
    const rollout = await s.service(e).start({ selector: 'role=web', build: 'always', canary: 1, batch_size: 2, max_failures: 0, reboot: 'none', health_timeout_seconds: 600 }, OPERATOR);
    await e.pass();
    const requested = (await s.storage.rollouts.get(rollout.id))!;
    for (const m of requested.machines) assert.equal((await s.storage.builds.findById(m.to_build_id!))!.health_check, 'systemctl is-active nginx', 'the build snapshots the check');
    await s.buildAll();
    await e.pass();
    await s.boot(s.ids[0]!, { ok: true, exit_code: 0, output: 'active\n' });
    await e.pass();
    const second = (await s.storage.rollouts.get(rollout.id))!;
    assert.deepEqual([second.wave, second.machines.map((m) => m.state)], [2, ['healthy', 'updating', 'updating']]);
    assert.deepEqual(second.machines[0]!.health, { ok: true, exit_code: 0, output: 'active\n' }, 'kept on the rollout’s machine row');
    await s.boot(s.ids[1]!);
    await e.pass();
    const done = (await s.storage.rollouts.get(rollout.id))!;
    assert.equal(done.state, 'rolled_back', done.message ?? '');
    assert.deepEqual(done.machines.map((m) => m.state), ['healthy', 'rolled_back', 'rolled_back']);
    assert.equal(done.machines[1]!.message, `build ${done.machines[1]!.to_build_id} reported without the result of its health check; rolled back`);
    assert.equal(await s.storage.machines.imageBuildId(s.ids[1]!), done.machines[1]!.from_build_id, 'pointed back at its previous build');
    await e.stop();
  });

  test('a second server takes over a rollout whose lease expired, re-points the wave in flight, reboots nobody twice, and goes on', async () => {
    const s = await setup(['E1', 'E2', 'E3']);
    const a = s.engine('server-a', 1);
    const rollout = await s.service(a).start({ selector: 'role=web', build: 'always', canary: 1, batch_size: 2, reboot: 'power', health_timeout_seconds: 600 }, OPERATOR);
    assert.deepEqual(rollout.machines.map((m) => m.state), ['building', 'building', 'building']);
    await a.pass();
    const requested = (await s.storage.rollouts.get(rollout.id))!;
    assert.ok(requested.machines.every((m) => m.to_build_id !== null), 'held builds requested');
    for (const m of requested.machines) assert.equal((await s.storage.builds.findById(m.to_build_id!))!.hold, true);
    assert.equal((await s.machines.get('E1')).status, 'ready', 'held builds leave the machines as they are');
    await s.buildAll();
    await a.pass();
    const rolling = (await s.storage.rollouts.get(rollout.id))!;
    assert.equal(rolling.state, 'rolling');
    assert.deepEqual(rolling.machines.map((m) => m.state), ['updating', 'built', 'built']);
    assert.deepEqual(s.cycled, [s.ids[0]], 'the canary was power cycled');
    assert.deepEqual(s.links.at(-1), ['E1', rolling.machines[0]!.to_build_id]);
    assert.equal(await s.storage.machines.imageBuildId(s.ids[0]!), rolling.machines[0]!.to_build_id);

    // Server A goes away without a word; B takes the rollout over once A's lease has expired.
    await outlive(1);
    const b = s.engine('server-b');
    const linksBefore = s.links.length;
    await b.pass();
    assert.deepEqual(s.links.slice(linksBefore), [['E1', rolling.machines[0]!.to_build_id]], 'the wave in flight is pointed again');
    assert.deepEqual(s.cycled, [s.ids[0]], 'and not rebooted again');
    assert.deepEqual(await s.storage.rollouts.claimLeases('server-a', new Date(Date.now() + 60_000).toISOString(), new Date().toISOString()), [], 'B holds it now');

    await s.boot(s.ids[0]!);
    await b.pass();
    const second = (await s.storage.rollouts.get(rollout.id))!;
    assert.deepEqual(second.machines.map((m) => m.state), ['healthy', 'updating', 'updating']);
    assert.deepEqual([...s.cycled].sort(), [...s.ids].sort());
    await s.boot(s.ids[1]!);
    await s.boot(s.ids[2]!);
    await b.pass();
    const done = (await s.storage.rollouts.get(rollout.id))!;
    assert.equal(done.state, 'succeeded');
    const kinds = (await s.storage.events.list({ limit: 200 })).items.map((e) => e.kind);
    assert.ok(kinds.includes('rollout.started') && kinds.includes('rollout.rolling') && kinds.includes('rollout.succeeded'), kinds.join(' '));
    await b.stop();
  });

  test('a machine whose build cannot be requested counts as a failed build', async () => {
    const s = await setup(['F1', 'F2']);
    const e = s.engine('server');
    // F2 already has a build running: its rollout build cannot be requested.
    await s.machines.update('F2', { nixos_config: '{ ... }: { networking.firewall.enable = true; }' }, OPERATOR);
    await s.machines.requestBuild('F2', OPERATOR);
    const rollout = await s.service(e).start({ selector: 'role=web', build: 'missing', max_failures: 0 }, OPERATOR);
    assert.deepEqual(rollout.machines.map((m) => [m.service_tag, m.state]), [['F1', 'unchanged'], ['F2', 'building']]);
    await e.pass();
    const done = (await s.storage.rollouts.get(rollout.id))!;
    assert.equal(done.state, 'failed');
    assert.equal(done.machines[1]!.state, 'build_failed');
    assert.equal(done.machines[1]!.to_build_id, null);
    assert.match(done.machines[1]!.message!, /^its build could not be requested: machine F2 already has build \d+ pending$/);
    await e.stop();
  });

  test('pause, resume and cancel through the service; a second rollout over the same machines is refused naming the first', async () => {
    const s = await setup(['P1', 'P2']);
    const e = s.engine('server');
    const svc = s.service(e);
    const rollout = await svc.start({ selector: 'role=web', build: 'always', canary: 1, batch_size: 1, reboot: 'none' }, OPERATOR);
    await assert.rejects(svc.start({ selector: 'role in (web)' }, OPERATOR), {
      code: 'conflict',
      message: `rollout ${rollout.id} (building, role=web) already holds P1, P2; wait for it, or cancel it first`,
    });
    await assert.rejects(s.machines.requestBuild('P1', OPERATOR), {
      code: 'conflict',
      message: `machine P1 is in rollout ${rollout.id}; wait for it, or cancel it, before building it alone`,
    });
    assert.equal((await svc.pause(rollout.id, OPERATOR)).state, 'paused');
    await assert.rejects(svc.pause(rollout.id, OPERATOR), { code: 'conflict', message: `rollout ${rollout.id} is paused; only a building or rolling rollout can be paused` });
    await e.pass();
    await s.buildAll();
    await e.pass();
    assert.equal((await s.storage.rollouts.get(rollout.id))!.wave, 0, 'paused: no wave starts');
    // Resumed with every build done: it rolls at once, and the canary is pointed at its build.
    const rolling = await svc.resume(rollout.id, OPERATOR);
    assert.equal(rolling.state, 'rolling');
    assert.equal(rolling.wave, 1);
    assert.equal(await s.storage.machines.imageBuildId(s.ids[0]!), rolling.machines[0]!.to_build_id);
    const cancelled = await svc.cancel(rollout.id, OPERATOR);
    assert.equal(cancelled.state, 'cancelled');
    assert.deepEqual(cancelled.machines.map((m) => m.state), ['cancelled', 'cancelled']);
    await assert.rejects(svc.resume(rollout.id, OPERATOR), { code: 'conflict' });
    await assert.rejects(svc.start({ selector: 'role=nothing' }, OPERATOR), { code: 'unprocessable', message: 'selector role=nothing matches no machine' });
    await assert.rejects(svc.start({ selector: '' }, OPERATOR), { code: 'invalid_input' });
    assert.equal((await svc.start({ selector: 'role=web', reboot: 'none' }, OPERATOR)).state, 'building', 'a cancelled rollout holds nothing');
    await e.stop();
  });
});
