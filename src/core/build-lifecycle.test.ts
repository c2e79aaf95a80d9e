import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { macOfTag } from '../../test/support/mac-of-tag.ts';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { BOOT_TOKEN_MAX_AGE_MS } from './boot-token.ts';
import { BuildLifecycle, MAX_ATTEMPTS } from './build-lifecycle.ts';
import { ConflictError, ForbiddenError, NotFoundError, UnprocessableError } from './errors.ts';
import { MachineService } from './machine-service.ts';
import { Notifier } from './notifier.ts';
import type { Actor } from './types.ts';

// The build lifecycle over the in-memory storage: every transition, no database, milliseconds.

const operator: Actor = { kind: 'user', name: 'op', role: 'operator' };
const builderA: Actor = { kind: 'builder', name: 'a' };
const builderB: Actor = { kind: 'builder', name: 'b' };
const image = { storePath: '/nix/store/abc-netboot', artifactUrl: 'http://boot/images/builds/1/', note: 'published' };

function setup() {
  const storage = new MemoryStorage();
  const notifier = new Notifier();
  const signals: string[] = [];
  for (const name of ['build.requested', 'build.cancelled', 'build.updated', 'machine.updated'] as const) {
    notifier.on(name, (id: number) => signals.push(`${name}:${id}`));
  }
  const builds = new BuildLifecycle(storage, notifier);
  const images = { removed: [] as number[][], async removeMachineImages(_tag: string, ids: number[]) { this.removed.push(ids); } };
  const machines = new MachineService(storage, notifier, images, builds);
  /** An enrolled machine with a hostname and configuration: `configured`. */
  const configured = async (tag: string) => {
    await machines.enroll({ service_tag: tag, mac_address: macOfTag(tag), hardware: {} }, { kind: 'machine', name: tag });
    return machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }' }, operator);
  };
  return { storage, notifier, signals, builds, machines, images, configured };
}

describe('build lifecycle (in memory)', () => {
  test('request: pending build, machine building, event, and a signal that wakes builders', async () => {
    const s = setup();
    const m = await s.configured('L1');
    const build = await s.builds.request(m.id, operator);
    assert.equal(build.status, 'pending');
    assert.equal((await s.machines.get('L1')).status, 'building');
    assert.equal((await s.machines.get('L1')).last_build_id, build.id);
    assert.deepEqual((await s.storage.events.list({ kind: 'build.requested' })).items.map((e) => e.actor), ['user:op']);
    assert.ok(s.signals.includes(`build.requested:${build.id}`));
  });

  /** Each case prepares a state, then returns the step that must be refused. */
  const refusals: Array<[string, (s: ReturnType<typeof setup>) => Promise<() => Promise<unknown>>, new (...a: never[]) => Error]> = [
    ['a machine without a hostname cannot be built', async (s) => {
      await s.machines.enroll({ service_tag: 'NOHOST', mac_address: '52:54:00:00:00:02', hardware: {} }, operator);
      return () => s.machines.requestBuild('NOHOST', operator);
    }, UnprocessableError],
    ['a second build while one is pending is a conflict', async (s) => {
      await s.configured('TWICE');
      await s.machines.requestBuild('TWICE', operator);
      return () => s.machines.requestBuild('TWICE', operator);
    }, ConflictError],
    ['an unknown machine is not found', async (s) => () => s.machines.requestBuild('NOSUCH', operator), NotFoundError],
    ['a finished build cannot be cancelled', async (s) => {
      const m = await s.configured('DONE');
      const b = await s.builds.request(m.id, operator);
      await s.builds.cancel(b.id, operator);
      return () => s.builds.cancel(b.id, operator);
    }, ConflictError],
  ];
  for (const [name, prepare, error] of refusals) {
    test(`refused: ${name}, and nothing changes`, async () => {
      const s = setup();
      const step = await prepare(s);
      const [events, builds, machines] = await Promise.all([s.storage.events.list(), s.storage.builds.countByStatus(), s.storage.machines.countByStatus()]);
      s.signals.length = 0;
      await assert.rejects(step(), error);
      assert.deepEqual(await s.storage.events.list(), events);
      assert.deepEqual(await s.storage.builds.countByStatus(), builds);
      assert.deepEqual(await s.storage.machines.countByStatus(), machines);
      assert.deepEqual(s.signals, []);
    });
  }

  test('claim -> success: the build holds a lease, then the machine is ready with this image', async () => {
    const s = setup();
    const m = await s.configured('OK1');
    const b = await s.builds.request(m.id, operator);
    const q = s.builds.queueFor(builderA, 60_000);
    const claimed = await q.claimNext();
    assert.equal(claimed?.id, b.id);
    assert.equal(claimed?.lease_owner, 'a');
    assert.equal(claimed?.attempts, 1);
    await q.appendLog(b.id, 'line\n');
    assert.equal(await q.succeed(b.id, image), true);
    const done = await s.builds.get(b.id);
    assert.deepEqual([done.status, done.log_output, done.artifact_url], ['success', 'line\n', image.artifactUrl]);
    assert.equal((await s.machines.get('OK1')).status, 'ready');
    assert.equal(await s.storage.machines.imageBuildId(m.id), b.id);
    assert.equal(await q.findPublishedStorePath(image.storePath, -1), b.id);
  });

  test('claim -> fail: the reason heads the log, the machine is failed and keeps its earlier image', async () => {
    const s = setup();
    const m = await s.configured('FAIL1');
    const q = s.builds.queueFor(builderA, 60_000);
    const first = await s.builds.request(m.id, operator);
    await q.claimNext();
    await q.succeed(first.id, image);
    const second = await s.builds.request(m.id, operator);
    await q.claimNext();
    await q.appendLog(second.id, 'compiling\n');
    assert.equal(await q.fail(second.id, 'nix-build exited 1\nmore detail'), true);
    const failed = await s.builds.get(second.id);
    assert.equal(failed.error, 'nix-build exited 1');
    assert.equal(failed.log_output, 'error: nix-build exited 1\ncompiling\n');
    assert.equal((await s.machines.get('FAIL1')).status, 'failed');
    assert.equal(await s.storage.machines.imageBuildId(m.id), first.id, 'the machine still boots its last good image');
  });

  test('a builder that lost its build changes nothing: succeed, fail and release answer false', async () => {
    const s = setup();
    const m = await s.configured('LOST1');
    const b = await s.builds.request(m.id, operator);
    await s.builds.queueFor(builderA, 60_000).claimNext();
    const other = s.builds.queueFor(builderB, 60_000);
    assert.equal(await other.succeed(b.id, image), false);
    assert.equal(await other.fail(b.id, 'x'), false);
    assert.equal(await other.release(b.id, 'x'), false);
    assert.equal(await other.renew(b.id), false);
    assert.equal((await s.builds.get(b.id)).status, 'building');
  });

  test('release puts the build back without counting the attempt', async () => {
    const s = setup();
    const m = await s.configured('REL1');
    const b = await s.builds.request(m.id, operator);
    const q = s.builds.queueFor(builderA, 60_000);
    await q.claimNext();
    assert.equal(await q.release(b.id, 'builder a stopped'), true);
    const back = await s.storage.builds.findRecord(b.id);
    assert.deepEqual([back?.status, back?.attempts, back?.lease_owner], ['pending', 0, null]);
    assert.match(back!.log_output, /builder a stopped/);
  });

  test('cancel while building: machine settles back (configured without an image), builders are told', async () => {
    const s = setup();
    const m = await s.configured('CAN1');
    const b = await s.builds.request(m.id, operator);
    await s.builds.queueFor(builderA, 60_000).claimNext();
    const cancelled = await s.builds.cancel(b.id, operator);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.error, 'cancelled by user op');
    assert.equal((await s.machines.get('CAN1')).status, 'configured');
    assert.ok(s.signals.includes(`build.cancelled:${b.id}`));
    assert.equal(await s.builds.queueFor(builderA, 60_000).succeed(b.id, image), false, 'the builder cannot overwrite it');
  });

  test(`lease loss: retried once, failed after ${MAX_ATTEMPTS} attempts, each with an event`, async () => {
    const s = setup();
    const m = await s.configured('SWEEP1');
    const b = await s.builds.request(m.id, operator);
    const dying = s.builds.queueFor(builderA, 1);
    const sweeper = s.builds.queueFor(builderB, 60_000);
    await dying.claimNext();
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(await sweeper.sweepExpired(), [{ id: b.id, serviceTag: 'SWEEP1', action: 'retried' }]);
    assert.equal((await s.builds.get(b.id)).status, 'pending');
    await dying.claimNext();
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(await sweeper.sweepExpired(), [{ id: b.id, serviceTag: 'SWEEP1', action: 'failed' }]);
    const failed = await s.builds.get(b.id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /builder a was lost .* after 2 attempts/);
    const kinds = (await s.storage.events.list({ buildId: b.id })).items.map((e) => e.kind);
    assert.deepEqual(kinds, ['build.failed', 'build.started', 'build.retried', 'build.started', 'build.requested']);
  });

  test('booted report: a signed token records the boot once; a wrong, forged, expired, older or replayed one or another machine\'s build is refused alike', async () => {
    const s = setup();
    const m = await s.configured('BOOT1');
    await s.configured('BOOT2');
    const b = await s.builds.request(m.id, operator);
    const secret = (await s.storage.builds.findRecord(b.id))!.boot_token;
    const now = Date.now();
    const older = await s.builds.issueBootToken(b.id, secret, now - 1000);
    const token = await s.builds.issueBootToken(b.id, secret, now);
    const report = (tag: string, t: string) => s.builds.recordBooted(tag, { build_id: b.id, token: t });
    await assert.rejects(report('BOOT1', 'wrong-token-xxxxxxxxxxxx'), ForbiddenError);
    await assert.rejects(report('BOOT1', await s.builds.issueBootToken(b.id, 'another build secret', now)), ForbiddenError, 'forged with another secret');
    await assert.rejects(report('BOOT1', await s.builds.issueBootToken(b.id, secret, now - BOOT_TOKEN_MAX_AGE_MS - 1000)), ForbiddenError, 'expired');
    await assert.rejects(report('BOOT1', `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`), ForbiddenError, 'signature altered');
    await assert.rejects(report('BOOT2', token), ForbiddenError);
    const record = await report('BOOT1', token);
    assert.equal(record.build_id, b.id);
    await assert.rejects(report('BOOT1', token), ForbiddenError, 'single use');
    await assert.rejects(report('BOOT1', older), ForbiddenError, 'a token issued before an accepted one');
    assert.equal((await report('BOOT1', await s.builds.issueBootToken(b.id, secret, now + 1000))).build_id, b.id, 'the next boot reports again');
    assert.equal((await s.machines.get('BOOT1')).booted_build_id, b.id);
    assert.equal((await s.machines.get('BOOT2')).booted_build_id, null);
  });

  test('a broken storage fails the request and leaves no signal behind', async () => {
    const s = setup();
    const m = await s.configured('BROKEN1');
    s.signals.length = 0;
    s.storage.failing = new Error('database unreachable');
    await assert.rejects(s.builds.request(m.id, operator), /database unreachable/);
    assert.deepEqual(s.signals, []);
  });

  test('removing a machine cancels its running build for its builder and removes its images', async () => {
    const s = setup();
    const m = await s.configured('DEL1');
    const b = await s.builds.request(m.id, operator);
    await s.machines.remove('DEL1', operator);
    assert.ok(s.signals.includes(`build.cancelled:${b.id}`));
    assert.deepEqual(s.images.removed, [[b.id]]);
    await assert.rejects(s.machines.get('DEL1'), NotFoundError);
  });
});
