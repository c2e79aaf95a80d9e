import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Rollout } from '../../src/core/rollout-machine.ts';
import type { BootHealth } from '../../src/core/types.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildApiServer, buildBootServer, startBuilder } from '../../src/server/roles.ts';
import type { RunningBuilder } from '../../src/builder/builder.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, requestBuild, uniqueConfig, waitForBuild } from '../support/builder.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { pollUntil } from '../support/poll.ts';

// A rollout over 20 simulated machines, with the stand-in Nix entry. Each machine "boots" by fetching
// its iPXE script and sending the booted report with the build id and token on the kernel line, and
// runs the in-image agent: it asks the boot server for a reboot request with that token and, when
// told, boots again. One machine's new image never comes up (it never reports). Images of a build with
// a health check send its result with the report, as netboot.nix's metal-booted does; one machine's
// check fails.

const hasNix = nixBuildAvailable();
const OPERATOR = { 'x-test-role': 'operator' };
const TAGS = Array.from({ length: 20 }, (_, i) => `WEB${String(i + 1).padStart(2, '0')}`);
/** In wave 3 (canary 1, batches of 5: WEB01 | WEB02-06 | WEB07-11 | WEB12-16 | WEB17-20). */
const BAD = 'WEB09';

/** Resolves once `check` returns a value, looking again every 50 ms; rejects after `timeoutMs`. */
function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return pollUntil(what, check, { timeoutMs, intervalMs: 50 });
}

for (const kind of await testDatabaseKinds()) {
  describe(`a rollout over 20 machines on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let builder: RunningBuilder;
    /** What each simulated machine runs now: the build and token from its last script. */
    const running = new Map<string, { build: number; token: string; up: boolean }>();
    /** Machines whose image of build N never comes up. */
    const broken = new Map<string, number>();
    let agents: ReturnType<typeof setInterval> | undefined;
    let polling: Promise<void> | undefined;
    const firstBuilds = new Map<string, number>();
    /** What a machine's health check gives on images built with one (default: it passes). */
    const healthOf = new Map<string, BootHealth>();

    /** Fetches the machine's script and, unless that image is broken, sends its booted report. */
    async function bootMachine(tag: string): Promise<void> {
      const script = (await boot.inject({ url: `/nixos/machines/${tag}.ipxe` })).body;
      const build = Number(/metal\.build_id=(\d+)/.exec(script)?.[1]);
      const token = /metal\.boot_token=(\S+)/.exec(script)?.[1] ?? '';
      assert.ok(build > 0 && token, `${tag} got an image script: ${script}`);
      const up = broken.get(tag) !== build;
      if (up) {
        const checked = Boolean((await t.ctx.storage.builds.findById(build))?.health_check);
        const health = checked ? (healthOf.get(tag) ?? { ok: true, exit_code: 0, output: 'active\n' }) : undefined;
        const r = await boot.inject({ method: 'POST', url: `/api/v1/machines/${tag}/booted`, payload: { build_id: build, token, ...(health ? { health } : {}) } });
        assert.equal(r.statusCode, 200, r.body);
      }
      running.set(tag, { build, token, up });
    }

    /** One round of every machine's agent (a machine whose image did not come up runs none). */
    async function agentRound(): Promise<void> {
      if (polling) return;
      polling = (async () => {
        await Promise.all(
          [...running.entries()].map(async ([tag, run]) => {
            if (!run.up) return;
            const r = await boot.inject({ url: `/api/v1/machines/${tag}/reboot-request?build_id=${run.build}&token=${run.token}` });
            if (r.statusCode === 200) await bootMachine(tag);
            else assert.equal(r.statusCode, 204, r.body);
          }),
        );
      })().finally(() => {
        polling = undefined;
      });
      await polling;
    }

    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.ok, METAL_BUILD_CONCURRENCY: '4' }, undefined, { rolloutEngine: { intervalMs: 100 } });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
      builder = await startBuilder(t.ctx, { name: 'rollout-builder' });
      t.ctx.rolloutEngine.start();
      for (const tag of TAGS) {
        await enrollAndConfigure(api, tag, tag.toLowerCase(), uniqueConfig());
        const put = await api.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: OPERATOR, payload: { labels: { role: 'web' } } });
        assert.equal(put.statusCode, 200, put.body);
      }
      const ids = await Promise.all(TAGS.map((tag) => requestBuild(api, tag)));
      for (const [i, id] of ids.entries()) {
        const b = await waitForBuild(t.ctx, id, undefined, 120_000);
        assert.equal(b.status, 'success', b.error ?? '');
        firstBuilds.set(TAGS[i]!, id);
      }
      for (const tag of TAGS) await bootMachine(tag);
      agents = setInterval(() => void agentRound().catch(() => undefined), 100);
    });
    after(async () => {
      if (agents) clearInterval(agents);
      await polling?.catch(() => undefined);
      await builder?.stop();
      await api?.close();
      await boot?.close();
      await t?.close();
    });

    const get = async (id: number) => (await api.inject({ url: `/api/v1/rollouts/${id}`, headers: OPERATOR })).json<Rollout>();
    const scriptBuild = async (tag: string) => Number(/metal\.build_id=(\d+)/.exec((await boot.inject({ url: `/nixos/machines/${tag}.ipxe` })).body)?.[1]);

    test('nothing changed: a rollout with build "missing" has nothing to build and succeeds at once', async () => {
      const r = await api.inject({ method: 'POST', url: '/api/v1/rollouts', headers: OPERATOR, payload: { selector: 'role=web', reboot: 'agent' } });
      assert.equal(r.statusCode, 201, r.body);
      const rollout = r.json<Rollout>();
      assert.deepEqual(new Set(rollout.machines.map((m) => m.state)), new Set(['unchanged']));
      assert.equal(rollout.waves, 0);
      const done = await eventually('the empty rollout ends', async () => {
        const x = await get(rollout.id);
        return x.state === 'building' ? undefined : x;
      });
      assert.equal(done.state, 'succeeded');
    });

    test('a machine that never reports stops the rollout in its wave, and exactly that wave is rolled back', async () => {
      for (const tag of TAGS) {
        const put = await api.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: OPERATOR, payload: { nixos_config: uniqueConfig() } });
        assert.equal(put.statusCode, 200, put.body);
      }
      const started = await api.inject({
        method: 'POST',
        url: '/api/v1/rollouts',
        headers: OPERATOR,
        payload: { selector: 'role=web', canary: 1, batch_size: 5, max_failures: 0, health_timeout_seconds: 4, reboot: 'agent' },
      });
      assert.equal(started.statusCode, 201, started.body);
      const rollout = started.json<Rollout>();
      assert.equal(rollout.state, 'building');
      assert.equal(rollout.waves, 5);
      assert.deepEqual(
        rollout.machines.map((m) => [m.service_tag, m.wave]),
        TAGS.map((tag, i) => [tag, i === 0 ? 1 : Math.ceil(i / 5) + 1]),
      );

      // A second rollout over any of these machines is refused, naming the first.
      const second = await api.inject({ method: 'POST', url: '/api/v1/rollouts', headers: OPERATOR, payload: { selector: 'role=web' } });
      assert.equal(second.statusCode, 409);
      assert.match(second.json().error.message, new RegExp(`^rollout ${rollout.id} \\(building, role=web\\) already holds WEB01, WEB02, WEB03, WEB04, WEB05 and 15 more; wait for it, or cancel it first$`));

      // The bad machine's new build is known once requested; its image will never report.
      const withBuilds = await eventually('every build requested', async () => {
        const x = await get(rollout.id);
        return x.machines.every((m) => m.to_build_id !== null) ? x : undefined;
      });
      broken.set(BAD, withBuilds.machines.find((m) => m.service_tag === BAD)!.to_build_id!);

      const done = await eventually('the rollout stops', async () => {
        const x = await get(rollout.id);
        return ['building', 'rolling', 'paused'].includes(x.state) ? undefined : x;
      });
      assert.equal(done.state, 'rolled_back', done.message ?? '');
      assert.equal(done.wave, 3);
      assert.equal(done.message, '1 failure (at most 0 tolerated) in wave 3: wave 3 rolled back');
      const byTag = new Map(done.machines.map((m) => [m.service_tag, m]));
      for (const [i, tag] of TAGS.entries()) {
        const m = byTag.get(tag)!;
        const wave = i === 0 ? 1 : Math.ceil(i / 5) + 1;
        const expected = wave < 3 ? 'healthy' : wave === 3 ? 'rolled_back' : 'cancelled';
        assert.equal(m.state, expected, `${tag} (wave ${wave}): ${m.message}`);
        assert.equal(m.from_build_id, firstBuilds.get(tag));
        // What the boot server hands out now: the new build up to wave 2, the previous one after.
        assert.equal(await scriptBuild(tag), wave < 3 ? m.to_build_id : firstBuilds.get(tag), `${tag}'s script`);
      }
      assert.match(byTag.get(BAD)!.message!, new RegExp(`^no booted report for build ${broken.get(BAD)} within 4 s; rolled back$`));

      // The healthy machines of wave 3 were asked to reboot and came back on their previous builds.
      const rolledBackHealthy = TAGS.slice(6, 11).filter((tag) => tag !== BAD);
      await eventually('wave 3 rebooted into its previous builds', async () =>
        rolledBackHealthy.every((tag) => running.get(tag)?.build === firstBuilds.get(tag)) ? true : undefined,
      );
      for (const tag of rolledBackHealthy) {
        const m = await t.ctx.machines.get(tag);
        assert.equal(m.booted_build_id, firstBuilds.get(tag), `${tag} reported its previous build`);
      }
      // Machines of later waves were never touched: their new builds stay held, unpublished to them.
      for (const tag of TAGS.slice(11)) assert.equal(running.get(tag)?.build, firstBuilds.get(tag));
      const events = (await t.ctx.storage.events.list({ kind: 'rollout.machine_rolled_back', limit: 100 })).items;
      assert.equal(events.length, 5);

      // Finished, it holds no machine any more: another rollout may start.
      const after = await api.inject({ method: 'POST', url: '/api/v1/rollouts', headers: OPERATOR, payload: { selector: 'role=web', build: 'missing', health_timeout_seconds: 4 } });
      assert.equal(after.statusCode, 201, after.body);
      const cancelled = await api.inject({ method: 'POST', url: `/api/v1/rollouts/${after.json<Rollout>().id}/cancel`, headers: OPERATOR });
      assert.equal(cancelled.statusCode, 200, cancelled.body);
      assert.equal(cancelled.json<Rollout>().state, 'cancelled');
      const again = await api.inject({ method: 'POST', url: `/api/v1/rollouts/${after.json<Rollout>().id}/cancel`, headers: OPERATOR });
      assert.equal(again.statusCode, 409);
      assert.deepEqual(again.json(), { error: { code: 'conflict', message: `rollout ${after.json<Rollout>().id} is already cancelled` } });
    });
    test('a profile’s health check gates the rollout: a failed check stops it in its wave and rolls that wave back', async () => {
      const CHECKED = TAGS.slice(0, 6); // canary WEB01, then WEB02-06
      const FAILING = 'WEB04';
      const created = await api.inject({ method: 'POST', url: '/api/v1/profiles', headers: OPERATOR, payload: { name: 'checked', health_check: 'systemctl is-active nginx' } });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(created.json().health_check, 'systemctl is-active nginx');
      for (const tag of CHECKED) {
        const put = await api.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: OPERATOR, payload: { profile: 'checked', labels: { role: 'web', tier: 'checked' } } });
        assert.equal(put.statusCode, 200, put.body);
        assert.equal(put.json().out_of_date, true, `${tag}: a profile with a health check makes a new image`);
      }
      healthOf.set(FAILING, { ok: false, exit_code: 3, output: 'starting nginx\nnginx: inactive\n' });
      const started = await api.inject({
        method: 'POST',
        url: '/api/v1/rollouts',
        headers: OPERATOR,
        // A long timeout: what fails the machine is its health report, not a missing one.
        payload: { selector: 'tier=checked', canary: 1, batch_size: 5, max_failures: 0, health_timeout_seconds: 120, reboot: 'agent' },
      });
      assert.equal(started.statusCode, 201, started.body);
      const rollout = started.json<Rollout>();
      const done = await eventually('the checked rollout stops', async () => {
        const x = await get(rollout.id);
        return ['building', 'rolling', 'paused'].includes(x.state) ? undefined : x;
      });
      assert.equal(done.state, 'rolled_back', done.message ?? '');
      assert.equal(done.wave, 2);
      assert.equal(done.message, '1 failure (at most 0 tolerated) in wave 2: wave 2 rolled back');
      const byTag = new Map(done.machines.map((m) => [m.service_tag, m]));
      const canary = byTag.get('WEB01')!;
      assert.deepEqual([canary.state, canary.health], ['healthy', { ok: true, exit_code: 0, output: 'active\n' }]);
      const failing = byTag.get(FAILING)!;
      assert.equal(failing.message, `health check failed on build ${failing.to_build_id} (exit 3): nginx: inactive; rolled back`);
      assert.deepEqual(failing.health, healthOf.get(FAILING));
      for (const tag of CHECKED.slice(1)) assert.equal(byTag.get(tag)!.state, 'rolled_back', tag);
      // The health check reached the image: the stand-in entry puts the build's .nix files in its kernel.
      const kernel = readFileSync(join(t.ctx.config.imagesDir, 'builds', String(canary.to_build_id), 'bzImage'), 'utf8');
      assert.ok(kernel.includes('metal.healthCheck = "systemctl is-active nginx";'), 'configuration.nix sets metal.healthCheck');
      // The scripts: the canary boots its new build; wave 2 its previous ones, which it reboots into.
      assert.equal(await scriptBuild('WEB01'), canary.to_build_id);
      for (const tag of CHECKED.slice(1)) assert.equal(await scriptBuild(tag), byTag.get(tag)!.from_build_id, `${tag}'s script`);
      await eventually('wave 2 rebooted into its previous builds', async () =>
        CHECKED.slice(1).every((tag) => running.get(tag)?.build === byTag.get(tag)!.from_build_id) ? true : undefined,
      );
      // The failed result is on the machine's event as it was sent.
      const booted = (await t.ctx.storage.events.list({ machineId: failing.machine_id, kind: 'machine.booted', limit: 10 })).items;
      const failedEvent = booted.find((e) => e.build_id === failing.to_build_id)!;
      assert.match(failedEvent.message, /health check failed \(exit 3\)$/);
      assert.deepEqual((failedEvent.data as { health?: unknown }).health, healthOf.get(FAILING));
    });
  });
}
