import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { verifyBuildImage } from '../images/image-publisher.ts';
import { buildApiServer, buildBootServer, startBuilder } from '../server/roles.ts';
import { FIXTURES, nixBuildAvailable, waitForBuild } from '../../test/support/builder.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { prepareWorkspace, renderConfigurationNix } from './build-workspace.ts';
import { runNixBuild } from './nix-build.ts';

const operator = { 'x-test-role': 'operator' };
const hasNix = nixBuildAvailable();

// The effective configuration that reaches nix-build: the profile's module, then the machine's own.
for (const kind of await testDatabaseKinds()) {
  describe(`a machine with a profile builds on ${kind.name}`, { skip: !hasNix }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let boot: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.ok });
      api = await buildApiServer(t.ctx);
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    });
    after(async () => {
      await api.close();
      await boot.close();
      await t.close();
    });

    test('the build imports the profile module and then the machine module; profile kernel parameters reach the boot script', async () => {
      const profileMark = `profile-${randomBytes(6).toString('hex')}`;
      const machineMark = `machine-${randomBytes(6).toString('hex')}`;
      const created = await api.inject({
        method: 'POST',
        url: '/api/v1/profiles',
        headers: operator,
        payload: {
          name: 'web',
          nixos_config: `{ ... }:\n{\n  # ${profileMark}\n  services.nginx.enable = true;\n}\n`,
          hostname_pattern: 'web-{n:02}',
          kernel_params: ['console=ttyS1,115200', 'nomodeset'],
        },
      });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal((await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('PRF001') })).statusCode, 201);
      const put = await api.inject({
        method: 'PUT',
        url: '/api/v1/machines/PRF001',
        headers: operator,
        payload: { profile: 'web', nixos_config: `{ ... }:\n{\n  # ${machineMark}\n}\n` },
      });
      assert.equal(put.statusCode, 200, put.body);
      const m = put.json();
      assert.deepEqual([m.profile, m.hostname, m.status, m.out_of_date], ['web', 'web-01', 'configured', true], 'named from the profile pattern at once');

      const builder = await startBuilder(t.ctx, { name: 'b1' });
      try {
        const requested = await api.inject({ method: 'POST', url: '/api/v1/machines/PRF001/build', headers: operator });
        assert.equal(requested.statusCode, 202, requested.body);
        assert.equal(requested.json().profile, 'web', 'the build names the profile it snapshots');
        const build = await waitForBuild(t.ctx, requested.json().id);
        assert.equal(build.status, 'success', build.error ?? build.log_output);
        assert.match(build.log_output, /profile web is imported before the machine's module/);
        const dir = join(t.ctx.config.imagesDir, 'builds', String(build.id));
        const kernel = readFileSync(join(dir, 'bzImage'), 'utf8');
        assert.ok(kernel.includes(profileMark) && kernel.includes(machineMark), 'both modules reached nix-build');
        const bootJson = await verifyBuildImage(dir);
        assert.deepEqual(bootJson.kernel_params, ['console=ttyS0', 'loglevel=4', 'console=ttyS1,115200', 'nomodeset']);
        const script = (await boot.inject({ url: '/nixos/machines/PRF001.ipxe' })).body;
        assert.match(script, /^kernel .* console=ttyS0 loglevel=4 console=ttyS1,115200 nomodeset/m);
        const after = (await api.inject({ url: '/api/v1/machines/PRF001', headers: operator })).json();
        assert.deepEqual([after.status, after.out_of_date], ['ready', false]);
      } finally {
        await builder.stop();
      }
    });
  });
}

describe('the stand-in entry checks the imports', { skip: !hasNix }, () => {
  test('a workspace with a profile whose configuration.nix leaves it out fails to evaluate', async () => {
    const root = mkdtempSync(join(tmpdir(), 'metal-ws-'));
    try {
      const ws = await prepareWorkspace(root, { id: 1, hostname: 'web-01', serviceTag: 'PRF002', files: { 'configuration.nix': '{ ... }: { }' }, profileConfig: '{ ... }: { }' });
      writeFileSync(ws.configurationFile, renderConfigurationNix({ hostname: 'web-01', serviceTag: 'PRF002', imports: ['./machine/configuration.nix'] }));
      let output = '';
      const result = await runNixBuild({
        entry: FIXTURES.ok,
        configurationFile: ws.configurationFile,
        hostname: 'web-01',
        serviceTag: 'PRF002',
        outLink: ws.outLink,
        timeoutMs: 60_000,
        isolation: 'unsandboxed',
        onOutput: (text) => (output += text),
      });
      assert.equal(result.outcome, 'failed', output);
      assert.match(output, /must import the profile module and then the machine module/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
