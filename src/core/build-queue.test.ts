import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SYSTEM_ACTOR } from './types.ts';
import { createTestContext, enrollmentPayload, type TestContext, sqlOf } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { MAX_ATTEMPTS } from './build-lifecycle.ts';

const operator = { kind: 'user', name: 'op', role: 'operator' } as const;

/** Lets a lease of `ms` expire, measured on the clock the queue compares against. */
async function outlive(ms: number): Promise<void> {
  const until = Date.now() + ms + 5;
  while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, until - Date.now()));
}

for (const kind of await testDatabaseKinds()) {
  describe(`build queue on ${kind.name}`, () => {
    let t: TestContext;
    before(async () => {
      t = await createTestContext(kind.fresh());
    });
    after(async () => t.close());

    const newBuild = async (tag: string) => {
      await t.ctx.machines.enroll(enrollmentPayload(tag), SYSTEM_ACTOR);
      await t.ctx.machines.update(tag, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }' }, operator);
      return t.ctx.machines.requestBuild(tag, operator);
    };
    const queue = (name: string, leaseMs = 60_000) => t.ctx.builds.queueFor({ kind: 'builder', name }, leaseMs);

    test('claims the oldest pending build once, with a lease and an attempt counted', async () => {
      const first = await newBuild('Q001');
      const second = await newBuild('Q002');
      const a = queue('a');
      const claimed = await a.claimNext();
      assert.equal(Number(claimed?.id), first.id);
      assert.equal(claimed?.status, 'building');
      assert.equal(claimed?.lease_owner, 'a');
      assert.equal(Number(claimed?.attempts), 1);
      assert.ok(claimed!.lease_expires_at! > new Date().toISOString());
      const next = await queue('b').claimNext();
      assert.equal(Number(next?.id), second.id);
      assert.equal(await queue('c').claimNext(), undefined);
      await a.fail(first.id, 'done with it');
      await queue('b').fail(second.id, 'done with it');
    });

    test('a build lost twice is retried once, then failed saying the builder was lost', async () => {
      const build = await newBuild('Q003');
      const dead = queue('dead-1', 200);
      assert.equal(Number((await dead.claimNext())?.id), build.id);
      assert.deepEqual(await queue('sweeper').sweepExpired(), [], 'a live lease is left alone');
      await outlive(200);
      assert.deepEqual(await queue('sweeper').sweepExpired(), [{ id: build.id, serviceTag: 'Q003', action: 'retried' }]);
      const retried = await t.ctx.builds.get(build.id);
      assert.equal(retried.status, 'pending');
      assert.match(retried.log_output, /builder dead-1 was lost \(its lease expired at .*\); the build is tried again/);
      assert.equal(await dead.renew(build.id), false, 'the lost builder cannot renew any more');

      const dead2 = queue('dead-2', 200);
      const again = await dead2.claimNext();
      assert.equal(Number(again?.attempts), MAX_ATTEMPTS);
      await outlive(200);
      assert.deepEqual(await queue('sweeper').sweepExpired(), [{ id: build.id, serviceTag: 'Q003', action: 'failed' }]);
      const failed = await t.ctx.builds.get(build.id);
      assert.equal(failed.status, 'failed');
      assert.match(failed.error ?? '', /^builder dead-2 was lost \(its lease expired at [^)]+\) after 2 attempts$/);
      assert.ok(failed.log_output.startsWith(`error: ${failed.error}\n`));
      assert.equal((await t.ctx.machines.get('Q003')).status, 'failed');
      const kinds = (await t.ctx.storage.events.list({ buildId: build.id })).items.map((e) => e.kind);
      assert.deepEqual(kinds.filter((k) => k.startsWith('build.')).reverse(), ['build.requested', 'build.started', 'build.retried', 'build.started', 'build.failed']);
    });

    test('a cancelled build can be neither renewed, logged to, nor marked success', async () => {
      const build = await newBuild('Q004');
      const q = queue('a');
      await q.claimNext();
      await q.appendLog(build.id, 'line 1\n');
      await t.ctx.builds.cancel(build.id, operator);
      assert.equal(await q.renew(build.id), false);
      await q.appendLog(build.id, 'line 2\n');
      assert.equal(await q.succeed(build.id, { storePath: '/nix/store/x', artifactUrl: 'http://x/', note: 'n' }), false);
      assert.equal(await q.fail(build.id, 'late'), false);
      const after = await t.ctx.builds.get(build.id);
      assert.equal(after.status, 'cancelled');
      assert.equal(after.log_output, 'line 1\n');
      assert.equal((await t.ctx.machines.get('Q004')).status, 'configured');
    });

    test('a build taken over by another builder is not finished by the first', async () => {
      const build = await newBuild('Q005');
      const first = queue('first', 200);
      await first.claimNext();
      await outlive(200);
      await queue('second').sweepExpired();
      const second = queue('second');
      assert.equal(Number((await second.claimNext())?.id), build.id);
      assert.equal(await first.succeed(build.id, { storePath: '/nix/store/x', artifactUrl: 'http://x/', note: 'n' }), false);
      assert.equal(await first.fail(build.id, 'not mine'), false);
      assert.equal(await second.succeed(build.id, { storePath: '/nix/store/y', artifactUrl: 'http://x/', note: 'n' }), true);
      const m = await sqlOf(t.ctx).selectFrom('machines').select(['status', 'image_build_id']).where('service_tag', '=', 'Q005').executeTakeFirstOrThrow();
      assert.deepEqual({ status: m.status, image: Number(m.image_build_id) }, { status: 'ready', image: build.id });
      assert.equal(await second.findPublishedStorePath('/nix/store/y', build.id + 1000), build.id);
    });

    test('release hands a build back without counting the attempt', async () => {
      const build = await newBuild('Q006');
      const q = queue('a');
      await q.claimNext();
      assert.equal(await q.release(build.id, 'builder a stopped'), true);
      const released = await t.ctx.builds.get(build.id);
      assert.equal(released.status, 'pending');
      assert.equal(released.attempts, 0);
      await t.ctx.builds.cancel(build.id, operator);
    });
  });
}
