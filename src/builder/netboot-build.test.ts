import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, startBuilder } from '../server/roles.ts';
import { verifyBuildImage } from '../images/image-publisher.ts';
import { createTestContext, type TestContext } from '../../test/support/context.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import type { RunningBuilder } from './builder.ts';
import { enrollAndConfigure, nixBuildAvailable, requestBuild, uniqueConfig, waitForBuild } from '../../test/support/builder.ts';

const NETBOOT = fileURLToPath(new URL('../../nix/netboot.nix', import.meta.url));
const STUB_NIXPKGS = fileURLToPath(new URL('../registration/fixtures/stub-nixpkgs', import.meta.url));

describe('the builder on nix/netboot.nix with METAL_NIXPKGS and METAL_CONSOLE (stand-in nixpkgs)', { skip: !nixBuildAvailable() }, () => {
  let t: TestContext;
  let api: FastifyInstance;
  let builder: RunningBuilder;
  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_NIX_ENTRY: NETBOOT, METAL_NIXPKGS: STUB_NIXPKGS, METAL_CONSOLE: 'tty0 ttyS1,115200n8' });
    api = await buildApiServer(t.ctx);
    builder = await startBuilder(t.ctx, { name: 'b1' });
  });
  after(async () => {
    await builder.stop();
    await api.close();
    await t.close();
  });

  test('the build uses the pinned nixpkgs and the consoles, and says which nixpkgs in its log and boot.json', { timeout: 180_000 }, async () => {
    await enrollAndConfigure(api, 'NIXPIN1', 'web-07', uniqueConfig());
    const id = await requestBuild(api, 'NIXPIN1');
    const build = await waitForBuild(t.ctx, id);
    assert.equal(build.status, 'success', `${build.error ?? ''}\n${build.log_output}`);
    assert.match(build.log_output, new RegExp(`builder b1: nixpkgs ${STUB_NIXPKGS} \\(METAL_NIXPKGS\\)\\n`));
    assert.match(build.log_output, new RegExp(`builder b1: built with nixpkgs 24\\.05\\.stub \\(revision 0123456789abcdef0123456789abcdef01234567\\) from ${STUB_NIXPKGS}\\n`));
    const bootJson = await verifyBuildImage(join(t.ctx.config.imagesDir, 'builds', String(id)));
    assert.deepEqual(bootJson.kernel_params, ['console=tty0', 'console=ttyS1,115200n8', 'loglevel=4']);
    assert.deepEqual(bootJson.nixpkgs, { source: STUB_NIXPKGS, sha256: null, version: '24.05.stub', revision: '0123456789abcdef0123456789abcdef01234567' });
    const recorded = { version: '24.05.stub', revision: '0123456789abcdef0123456789abcdef01234567', source: STUB_NIXPKGS, sha256: null };
    assert.deepEqual(build.nixpkgs, recorded, 'the build row records the nixpkgs its result names');
    const shown = await api.inject({ url: `/api/v1/builds/${id}`, headers: { 'x-test-role': 'viewer' } });
    assert.deepEqual(shown.json().nixpkgs, recorded);
    const listed = await api.inject({ url: '/api/v1/machines/NIXPIN1/builds', headers: { 'x-test-role': 'viewer' } });
    assert.deepEqual(listed.json().items[0].nixpkgs, recorded);
    const succeeded = (await t.ctx.storage.events.list({ buildId: id, kind: 'build.succeeded' })).items[0];
    assert.equal((succeeded?.data?.nixpkgs as { revision?: string } | undefined)?.revision, recorded.revision);
  });
});
