import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Build } from '../../src/core/types.ts';
import type { Rollout } from '../../src/core/rollout-machine.ts';
import { enrollmentPayload } from '../support/context.ts';
import { hasNixBuild, startApiServer, type ApiServer } from '../support/api-server.ts';
import { runCli } from '../support/cli-process.ts';
import { pollUntil } from '../support/poll.ts';

const STANDIN_ENTRY = new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url).pathname;
const nix = hasNixBuild();

/** Resolves once the build has ended; rejects after `timeoutMs`. */
async function finished(metal: ApiServer, id: number, timeoutMs = 60_000): Promise<Build> {
  let last: Build | undefined;
  return pollUntil(
    `build ${id} ended`,
    async () => {
      last = await metal.api<Build>('GET', `/api/v1/builds/${id}`);
      return ['success', 'failed', 'cancelled'].includes(last.status) && last;
    },
    { timeoutMs, intervalMs: 100, state: () => last?.status },
  );
}

describe('metal machines rollback and metal rollout against a real server', { skip: !nix }, () => {
  let metal: ApiServer;
  let env: Record<string, string>;
  const builds: number[] = [];
  before(async () => {
    metal = await startApiServer(STANDIN_ENTRY);
    env = { XDG_CONFIG_HOME: '/nonexistent', METAL_URL: metal.url, METAL_TOKEN: metal.adminToken };
    for (const tag of ['RCLI1', 'RCLI2']) {
      await metal.api('POST', '/api/v1/enroll', enrollmentPayload(tag));
      await metal.api('PUT', `/api/v1/machines/${tag}`, { hostname: tag.toLowerCase(), nixos_config: '{ ... }: { }', labels: { role: 'cli' } });
    }
    for (const config of ['{ ... }: { }', '{ ... }: { networking.firewall.enable = false; }']) {
      await metal.api('PUT', '/api/v1/machines/RCLI1', { nixos_config: config });
      const b = await metal.api<Build>('POST', '/api/v1/machines/RCLI1/build');
      assert.equal((await finished(metal, b.id)).status, 'success');
      builds.push(b.id);
    }
    const b2 = await metal.api<Build>('POST', '/api/v1/machines/RCLI2/build');
    assert.equal((await finished(metal, b2.id)).status, 'success');
  });
  after(async () => metal?.stop());

  test('machines rollback: to the build before, then to a named one; a machine with nothing earlier exits 1 saying why', async () => {
    const back = await runCli(['machines', 'rollback', 'RCLI1'], env);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout, `RCLI1: boots build ${builds[0]} from its next boot (was ${builds[1]})\n`);
    const forward = await runCli(['machines', 'rollback', 'RCLI1', '--build', String(builds[1])], env);
    assert.equal(forward.code, 0, forward.stderr);
    const none = await runCli(['machines', 'rollback', 'RCLI2'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /RCLI2 has no successful build before build \d+ to roll back to/);
    const bad = await runCli(['machines', 'rollback', 'RCLI1', '--build', 'x'], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--build must be a positive whole number/);
  });

  test('rollout start --wait shows progress and exits 1 when machines never report; ls and show list it', async () => {
    await metal.api('PUT', '/api/v1/machines/RCLI2', { nixos_config: '{ ... }: { services.openssh.enable = true; }' });
    const r = await runCli(['rollout', 'start', '-l', 'role=cli', '--canary', '1', '--batch', '5', '--reboot', 'none', '--health-timeout', '1', '--wait'], env, { timeoutMs: 90_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /metal: rollout (\d+) building, wave 0\/1: 1 building, 1 unchanged/);
    assert.match(r.stderr, /metal: rollout \d+ rolled_back: 1 failure \(at most 0 tolerated\) in wave 1: wave 1 rolled back\n$/);
    const id = Number(/rollout (\d+) rolled_back/.exec(r.stderr)![1]);
    const rollout = await metal.api<Rollout>('GET', `/api/v1/rollouts/${id}`);
    assert.deepEqual(rollout.machines.map((m) => [m.service_tag, m.state]), [['RCLI1', 'unchanged'], ['RCLI2', 'rolled_back']]);
    const ls = await runCli(['rollout', 'ls'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`^ID +STATE +WAVE +MACHINES +SELECTOR +BY +STARTED\\n${id} +rolled_back +1/1 +2 +role=cli +user:admin `));
    const show = await runCli(['rollout', 'show', String(id)], env);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /RCLI2 +1 +\d+ +\d+ +rolled_back .*no booted report for build \d+ within 1 s; rolled back/);
    const cancel = await runCli(['rollout', 'cancel', String(id)], env);
    assert.equal(cancel.code, 1);
    assert.match(cancel.stderr, new RegExp(`rollout ${id} is already rolled_back`));
  });
});
