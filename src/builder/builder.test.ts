import { buildApiServer, buildBootServer, startBuilder } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { verifyBuildImage } from '../images/image-publisher.ts';
import { createTestContext, type TestContext, sqlOf } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { type RunningBuilder } from './builder.ts';
import { pollUntil } from '../../test/support/poll.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, processesMentioning, requestBuild, uniqueConfig, waitForBuild } from '../../test/support/builder.ts';

const operator = { 'x-test-role': 'operator' };
const hasNix = nixBuildAvailable();

for (const kind of await testDatabaseKinds()) {
  describe(`builder with nix-build on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    let builder: RunningBuilder | undefined;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.ok });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    });
    afterEach(async () => {
      await builder?.stop();
      builder = undefined;
    });
    after(async () => {
      await api.close();
      await boot.close();
      await t.close();
    });

    const machine = async (tag: string) => (await api.inject({ url: `/api/v1/machines/${tag}`, headers: operator })).json();
    const imageBuildId = async (tag: string) => {
      const row = await sqlOf(t.ctx).selectFrom('machines').select('image_build_id').where('service_tag', '=', tag).executeTakeFirstOrThrow();
      return row.image_build_id === null ? null : Number(row.image_build_id);
    };
    const bootScript = async (tag: string) => (await boot.inject({ url: `/nixos/machines/${tag}.ipxe` })).body;

    test('enroll, configure, build: success, files published with matching digests, machine ready, boot script names the build', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1' });
      await enrollAndConfigure(api, 'SRV001', 'web-01', uniqueConfig());
      // How soon a build is claimed is measured by the benchmarks (bench/), not asserted here.
      const id = await requestBuild(api, 'SRV001');
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'success', build.error ?? '');
      assert.equal(build.error, null);
      const key = (await t.ctx.storage.builds.findRecord(id))!.image_key;
      assert.match(key, /^[A-Za-z0-9_-]{22}$/, 'a random 128-bit key, not the build id');
      assert.equal(build.artifact_url, `http://10.0.2.100/images/builds/${key}/`);
      assert.match(build.log_output, /stand-in: building image for web-01 \(SRV001\)/);
      assert.match(build.log_output, /building '\/nix\/store\/.*\.drv'/, 'nix-build\'s own output is in the log');

      const dir = join(t.ctx.config.imagesDir, 'builds', String(id));
      const bootJson = await verifyBuildImage(dir);
      assert.match(bootJson.init, /^\/nix\/store\/[a-z0-9]{32}-metal-standin-netboot-web-01\/init$/);
      assert.deepEqual(bootJson.kernel_params, ['console=ttyS0', 'loglevel=4']);
      assert.equal(readlinkSync(join(t.ctx.config.imagesDir, 'machines', 'SRV001')), `../builds/${id}`);

      const m = await machine('SRV001');
      assert.equal(m.status, 'ready');
      assert.equal(await imageBuildId('SRV001'), id);
      const row = await t.ctx.storage.builds.findRecord(id);
      assert.match(row!.store_path ?? '', /^\/nix\/store\/[a-z0-9]{32}-metal-standin-netboot-web-01$/);
      const events = await t.ctx.storage.events.list({ buildId: id });
      const succeeded = events.items.find((e) => e.kind === 'build.succeeded');
      assert.equal(succeeded?.actor, 'builder:b1');
      assert.ok(events.items.some((e) => e.kind === 'build.started'));

      const script = await bootScript('SRV001');
      assert.match(script, new RegExp(`kernel http://10\\.0\\.2\\.100/images/builds/${key}/bzImage initrd=initrd init=${bootJson.init.replace(/[.]/g, '\\.')} console=ttyS0`));
      assert.match(script, new RegExp(`initrd --name initrd http://10\\.0\\.2\\.100/images/builds/${key}/initrd`));
      assert.equal(processesMentioning(join(t.ctx.config.dataDir, 'builds-work', String(id))).length, 0);
    });

    test('a configuration of several files builds: the entry imports ./hardware.nix and a module one folder down', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1' });
      await enrollAndConfigure(api, 'MULTI1', 'web-09', uniqueConfig());
      const marker = `hardware-${Date.now()}`;
      const files = {
        'configuration.nix': `{ ... }: {\n  imports = [ ./hardware.nix ./modules/web.nix ];\n}\n`,
        'hardware.nix': `{ ... }: {\n  # ${marker}\n  boot.initrd.availableKernelModules = [ "nvme" ];\n}\n`,
        'modules/web.nix': '{ ... }: { services.nginx.enable = true; }\n',
      };
      const put = await api.inject({ method: 'PUT', url: '/api/v1/machines/MULTI1', headers: operator, payload: { nixos_files: files } });
      assert.equal(put.statusCode, 200, put.body);
      const id = await requestBuild(api, 'MULTI1');
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'success', `${build.error ?? ''}\n${build.log_output}`);
      assert.deepEqual(build.config_files, files, 'the build keeps the files as they were when requested');
      assert.equal(build.config, files['configuration.nix']);
      assert.equal(build.nixpkgs, null, 'the stand-in records no nixpkgs');
      const kernel = readFileSync(join(t.ctx.config.imagesDir, 'builds', String(id), 'bzImage'), 'utf8');
      assert.ok(kernel.includes(marker), 'hardware.nix was written and built');
      assert.ok(kernel.includes('services.nginx.enable'), 'modules/web.nix was written and built');

      // The stand-in really imports: an entry naming a file that is not in the map fails the build.
      const broken = { 'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ./missing.nix ]; }\n', 'hardware.nix': files['hardware.nix'] };
      assert.equal((await api.inject({ method: 'PUT', url: '/api/v1/machines/MULTI1', headers: operator, payload: { nixos_files: broken } })).statusCode, 200);
      const failed = await waitForBuild(t.ctx, await requestBuild(api, 'MULTI1'));
      assert.equal(failed.status, 'failed');
      assert.match(failed.error ?? '', /missing\.nix/);
    });

    test('a rebuild of the same result links the published files instead of copying them', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1' });
      const first = (await machine('SRV001')).last_build_id as number;
      const id = await requestBuild(api, 'SRV001');
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'success', build.error ?? '');
      assert.match(build.log_output, new RegExp(`is already published by build ${first}; its files were linked, not copied`));
      const a = statSync(join(t.ctx.config.imagesDir, 'builds', String(first), 'bzImage'));
      const b = statSync(join(t.ctx.config.imagesDir, 'builds', String(id), 'bzImage'));
      assert.equal(a.ino, b.ino);
      await verifyBuildImage(join(t.ctx.config.imagesDir, 'builds', String(id)));
      assert.equal(await imageBuildId('SRV001'), id);
    });

    test('a failing configuration: failed with nix\'s error line, machine failed, previous image still served', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1' });
      const published = await imageBuildId('SRV001');
      assert.ok(published);
      const put = await api.inject({
        method: 'PUT',
        url: '/api/v1/machines/SRV001',
        headers: operator,
        payload: { nixos_config: '{ config, ... }: { services.openssh.enable = true' },
      });
      assert.equal(put.statusCode, 200);
      const id = await requestBuild(api, 'SRV001');
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'failed');
      assert.equal(build.error, "error: syntax error, unexpected end of file, expecting ';'");
      assert.ok(build.log_output.startsWith("error: syntax error, unexpected end of file, expecting ';'\n"), build.log_output.slice(0, 200));
      assert.equal((await machine('SRV001')).status, 'failed');
      assert.equal(await imageBuildId('SRV001'), published);
      assert.equal(readlinkSync(join(t.ctx.config.imagesDir, 'machines', 'SRV001')), `../builds/${published}`);
      const publishedKey = (await t.ctx.storage.builds.findRecord(published!))!.image_key;
      assert.match(await bootScript('SRV001'), new RegExp(`/images/builds/${publishedKey}/bzImage `));
      await verifyBuildImage(join(t.ctx.config.imagesDir, 'builds', String(published)));
    });

    test('an entry whose result has no boot.json: failed naming the missing file', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1', nixEntry: FIXTURES.noBootJson });
      await enrollAndConfigure(api, 'SRV002', 'web-02', uniqueConfig());
      const id = await requestBuild(api, 'SRV002');
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'failed');
      assert.match(build.error ?? '', /^the build result has no boot\.json \(expected \/nix\/store\/[a-z0-9]{32}-metal-standin-no-boot-json-web-02\/boot\.json\)$/);
      assert.ok(build.log_output.startsWith(`error: ${build.error}\n`));
      assert.equal((await machine('SRV002')).status, 'failed');
      assert.equal(await imageBuildId('SRV002'), null);
      assert.throws(() => statSync(join(t.ctx.config.imagesDir, 'builds', String(id))), /ENOENT/);
    });

    test('without nix-build on PATH: the build fails saying so', async () => {
      const path = process.env.PATH;
      process.env.PATH = '/nonexistent';
      try {
        builder = await startBuilder(t.ctx, { name: 'b1' });
        await enrollAndConfigure(api, 'SRV005', 'web-05', uniqueConfig());
        const id = await requestBuild(api, 'SRV005');
        const build = await waitForBuild(t.ctx, id);
        assert.equal(build.status, 'failed');
        assert.equal(build.error, 'builder b1: nix-build is not installed or not on PATH (see docs/builder.md)');
        assert.equal((await machine('SRV005')).status, 'failed');
      } finally {
        process.env.PATH = path;
      }
    });

    test('cancel: nix-build is stopped, the build stays cancelled, nothing is published', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1', nixEntry: FIXTURES.slow, logIntervalMs: 50 });
      await enrollAndConfigure(api, 'SRV003', 'web-03', uniqueConfig());
      const id = await requestBuild(api, 'SRV003');
      await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'));
      const workDir = join(t.ctx.config.dataDir, 'builds-work', String(id));
      assert.ok(processesMentioning(workDir).length > 0, 'nix-build runs');
      const r = await api.inject({ method: 'POST', url: `/api/v1/builds/${id}/cancel`, headers: operator });
      assert.equal(r.statusCode, 200);
      assert.equal(r.json().status, 'cancelled');
      await builder.stop();
      builder = undefined;
      assert.deepEqual(processesMentioning(workDir), [], 'nix-build was stopped');
      const build = await t.ctx.builds.get(id);
      assert.equal(build.status, 'cancelled');
      assert.equal(build.error, 'cancelled by user test-operator');
      assert.equal((await machine('SRV003')).status, 'configured');
      assert.equal(await imageBuildId('SRV003'), null);
    });

    test('stopping a builder hands its running build back to the queue; the next builder finishes it', async () => {
      builder = await startBuilder(t.ctx, { name: 'b1', nixEntry: FIXTURES.slow, logIntervalMs: 50 });
      await enrollAndConfigure(api, 'SRV004', 'web-04', uniqueConfig());
      const id = await requestBuild(api, 'SRV004');
      await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'));
      // A running builder says so (its heartbeat), with the build it runs.
      const builders = async () => (await api.inject({ url: '/api/v1/builders', headers: operator })).json().items as Array<{ name: string; live: boolean; running: number; concurrency: number; boot_check: string }>;
      await pollUntil('b1 reports its running build', async () => (await builders()).some((b) => b.name === 'b1' && b.running === 1) || undefined, { timeoutMs: 20_000, intervalMs: 100 });
      assert.deepEqual((await builders()).map((b) => [b.name, b.live, b.concurrency, b.boot_check]), [['b1', true, 1, 'off']]);
      await builder.stop();
      builder = undefined;
      assert.deepEqual(await builders(), [], 'a builder that stops removes its row');
      const released = await t.ctx.builds.get(id);
      assert.equal(released.status, 'pending');
      assert.equal(released.attempts, 0);
      assert.match(released.log_output, /builder b1 stopped; the build goes back to the queue/);
      // Waiting with no builder running: the build page and the overview say so, and how to start one.
      const page = await api.inject({ url: `/builds/${id}`, headers: operator });
      assert.match(page.body, /class="alert alert-warning"[^>]*>No builder is running\. Builds wait until a builder takes them; start one \(metal builder/);
      const overview = await api.inject({ url: '/', headers: operator });
      assert.match(overview.body, /1 build waits\. No builder is running/);
      builder = await startBuilder(t.ctx, { name: 'b2' });
      const build = await waitForBuild(t.ctx, id);
      assert.equal(build.status, 'success', build.error ?? '');
      assert.equal(build.attempts, 1);
    });
  });

  describe(`builder timeout on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.slow, METAL_BUILD_TIMEOUT: '1' });
      api = await buildApiServer(t.ctx);
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    test('a build longer than METAL_BUILD_TIMEOUT fails saying so', async () => {
      const builder = await startBuilder(t.ctx, { name: 'b1' });
      try {
        await enrollAndConfigure(api, 'SRV010', 'slow-01', uniqueConfig());
        const id = await requestBuild(api, 'SRV010');
        const build = await waitForBuild(t.ctx, id);
        assert.equal(build.status, 'failed');
        assert.equal(build.error, 'nix-build did not finish within 1 s (METAL_BUILD_TIMEOUT) and was stopped');
        assert.ok(build.log_output.startsWith(`error: ${build.error}\n`));
        assert.match(build.log_output, /stand-in: slow build for slow-01/);
        assert.deepEqual(processesMentioning(join(t.ctx.config.dataDir, 'builds-work', String(id))), []);
        const m = (await api.inject({ url: '/api/v1/machines/SRV010', headers: operator })).json();
        assert.equal(m.status, 'failed');
      } finally {
        await builder.stop();
      }
    });
  });
}
