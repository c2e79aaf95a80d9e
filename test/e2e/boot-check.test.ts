import assert from 'node:assert/strict';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, startBuilder } from '../../src/server/roles.ts';
import type { RunningBuilder } from '../../src/builder/builder.ts';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { enrollAndConfigure, requestBuild, uniqueConfig, waitForBuild } from '../support/builder.ts';
import { prepareStandinEntry, STANDIN_ENTRY } from './support/lab-server.ts';

// The whole path: nix-build of the bootable stand-in entry, publication, then the image booted in
// QEMU by the builder; its /init reports booted (or, for a `*-noreport` hostname, never does).
describe('the builder boots each image in a VM before a machine gets it (METAL_BUILD_BOOT_CHECK=booted)', { skip: labSkipReason({ nix: true }), timeout: 600_000 }, () => {
  let t: TestContext;
  let api: FastifyInstance;
  let builder: RunningBuilder;
  const operator = { 'x-test-role': 'operator' };
  before(async () => {
    prepareStandinEntry();
    t = await createTestContext(freshSqlite(), { METAL_NIX_ENTRY: STANDIN_ENTRY, METAL_BUILD_BOOT_CHECK: 'booted', METAL_BUILD_BOOT_CHECK_TIMEOUT: '240' });
    api = await buildApiServer(t.ctx);
    builder = await startBuilder(t.ctx, { name: 'checker' });
  });
  after(async () => {
    await builder?.stop();
    await api?.close();
    await t?.close();
  });

  test('an image that reports booted is published; one that stops without reporting is not, and the machine keeps its last good image', async () => {
    const link = join(t.ctx.config.imagesDir, 'machines', 'CHECK1');
    await enrollAndConfigure(api, 'CHECK1', 'web-01', uniqueConfig());
    const good = await requestBuild(api, 'CHECK1');
    const passed = await waitForBuild(t.ctx, good, undefined, 400_000);
    assert.equal(passed.status, 'success', `${passed.error ?? ''}\n${passed.log_output}`);
    assert.match(passed.log_output, /^boot check: booting the image in a VM \(TCG/m);
    assert.match(passed.log_output, new RegExp(`^vm\\| metal-standin: booted web-01 build ${good}$`, 'm'));
    assert.match(passed.log_output, /^boot check: the image asked POST \/api\/v1\/machines\/CHECK1\/booted$/m);
    assert.match(passed.log_output, /^boot check: passed: the image reported booted after \d+ s$/m);
    assert.equal(readlinkSync(link), `../builds/${good}`);
    assert.ok(Number.isInteger(passed.boot_check_seconds) && passed.boot_check_seconds! >= 0, `boot_check_seconds: ${passed.boot_check_seconds}`);
    const succeeded = (await t.ctx.storage.events.list({ buildId: good, kind: 'build.succeeded' })).items[0];
    assert.match(succeeded?.message ?? '', /; it booted in a VM in \d+ s/);
    // The VM's report went to the check, not to the boot server: the machine itself has not booted it.
    const machine = await api.inject({ url: '/api/v1/machines/CHECK1', headers: operator });
    assert.equal(machine.json().booted_build_id, null);

    const put = await api.inject({ method: 'PUT', url: '/api/v1/machines/CHECK1', headers: operator, payload: { hostname: 'web-01-noreport', nixos_config: uniqueConfig() } });
    assert.equal(put.statusCode, 200, put.body);
    const bad = await requestBuild(api, 'CHECK1');
    const failed = await waitForBuild(t.ctx, bad, undefined, 400_000);
    assert.equal(failed.status, 'failed', failed.log_output);
    assert.equal(failed.boot_check_seconds, null);
    assert.match(failed.error ?? '', /^boot check: the image powered off after \d+ s without reporting booted; the console's last words: metal-standin: kernel line lacks valid .*, or it never reports; not reporting$/);
    assert.ok(failed.log_output.startsWith(`error: ${failed.error}\n`), 'the reason is at the top of the log');
    assert.match(failed.log_output, /^vm\| metal-standin: this image never reports \(its hostname says so\)$/m);
    assert.equal(existsSync(join(t.ctx.config.imagesDir, 'builds', String(bad))), false, 'the failed image is withdrawn');
    assert.equal(readlinkSync(link), `../builds/${good}`, 'the machine still boots the build that passed');

    // A profile whose machines cannot come up in a VM skips the check: the same image is published.
    const profile = await api.inject({ method: 'POST', url: '/api/v1/profiles', headers: operator, payload: { name: 'static-nics', skip_boot_check: true } });
    assert.equal(profile.statusCode, 201, profile.body);
    assert.equal(profile.json().skip_boot_check, true);
    const joined = await api.inject({ method: 'PUT', url: '/api/v1/machines/CHECK1', headers: operator, payload: { profile: 'static-nics' } });
    assert.equal(joined.statusCode, 200, joined.body);
    const unchecked = await requestBuild(api, 'CHECK1');
    const published = await waitForBuild(t.ctx, unchecked, undefined, 400_000);
    assert.equal(published.status, 'success', `${published.error ?? ''}\n${published.log_output}`);
    assert.match(published.log_output, /^boot check: skipped: profile static-nics asks its machines' builds to skip it \(METAL_BUILD_BOOT_CHECK=booted\)$/m);
    assert.doesNotMatch(published.log_output, /^vm\| /m, 'no VM ran');
    assert.equal(published.boot_check_seconds, null);
    assert.equal(readlinkSync(link), `../builds/${unchecked}`);

    const metrics = (await api.inject({ url: '/metrics' })).body;
    for (const result of ['passed', 'failed', 'skipped']) {
      assert.match(metrics, new RegExp(`^metal_build_boot_checks_total\\{result="${result}"\\} 1$`, 'm'), `one ${result} boot check counted`);
    }
  });
});
