import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { enrollmentPayload } from '../support/context.ts';
import { hasNixBuild, startApiServer, type ApiServer } from '../support/api-server.ts';
import { runCli } from '../support/cli-process.ts';
import { pollUntil } from '../support/poll.ts';

const STANDIN_ENTRY = new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url).pathname;
const nix = hasNixBuild();

interface Machine {
  service_tag: string;
  hostname: string | null;
  status: string;
  profile: string | null;
  labels: Record<string, string>;
  out_of_date: boolean;
  last_build_id: number | null;
}

/** Polls the API until `until` holds for every machine (builds run in the server's builder). */
async function waitForMachines(metal: ApiServer, tags: string[], until: (m: Machine) => boolean, timeoutMs = 60_000): Promise<Machine[]> {
  let machines: Machine[] = [];
  return pollUntil(
    'the machines got there',
    async () => {
      machines = await Promise.all(tags.map((t) => metal.api<Machine>('GET', `/api/v1/machines/${t}`)));
      return machines.every(until) && machines;
    },
    { timeoutMs, intervalMs: 200, state: () => machines.map((m) => [m.service_tag, m.status, m.out_of_date]) },
  );
}

// The walk-through of docs/fleet.md, through the command line: one profile and one rule, and three
// new machines end up configured and built with no per-machine step.
describe('fleet configuration through the metal command line', { skip: !nix }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-fleet-cli-'));
  let metal: ApiServer;
  let env: Record<string, string> = {};
  const metalCli = async (...args: string[]) => {
    const r = await runCli(args, env);
    assert.equal(r.code, 0, `metal ${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    metal = await startApiServer(STANDIN_ENTRY);
    env = { XDG_CONFIG_HOME: join(dir, 'config'), METAL_URL: metal.url, METAL_TOKEN: metal.adminToken };
  });
  after(async () => {
    await metal?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a profile and a rule: three new machines are named, configured and built with no per-machine step', async () => {
    writeFileSync(join(dir, 'lab.nix'), '{ ... }:\n{\n  services.openssh.enable = true;\n}\n');
    await metalCli('profiles', 'create', 'lab', '--config', join(dir, 'lab.nix'), '--hostname-pattern', 'lab-{n:02}', '--kernel-param', 'console=ttyS0,115200');
    await metalCli('rules', 'create', 'qemu-lab', '--match', 'manufacturer=QEMU', '--profile', 'lab', '--label', 'role=lab', '--build');
    const ls = await metalCli('rules', 'ls');
    assert.match(ls.stdout, /qemu-lab\s+100\s+yes/);
    const tags = ['LAB0001', 'LAB0002', 'LAB0003'];
    for (const tag of tags) {
      const payload = enrollmentPayload(tag);
      payload.hardware.manufacturer = 'QEMU';
      payload.hardware.model = 'Standard PC (Q35 + ICH9, 2009)';
      const r = await fetch(`${metal.url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
      assert.equal(r.status, 201, await r.text());
    }
    const built = await waitForMachines(metal, tags, (m) => m.status === 'ready');
    assert.deepEqual(built.map((m) => [m.hostname, m.profile, m.labels.role, m.out_of_date]), [
      ['lab-01', 'lab', 'lab', false],
      ['lab-02', 'lab', 'lab', false],
      ['lab-03', 'lab', 'lab', false],
    ]);
    const machines = await metalCli('machines', 'ls', '-l', 'role=lab', '--profile', 'lab');
    assert.equal(machines.stdout.trim().split('\n').length, 4, machines.stdout);
    const profiles = await metalCli('profiles', 'ls');
    assert.match(profiles.stdout, /^lab\s+3\s+0\s+lab-\{n:02\}\s+console=ttyS0,115200\s+no/m);
    // A health check is part of what the images are built from; removing it again undoes that.
    const checked = await metalCli('profiles', 'edit', 'lab', '--health-check', 'systemctl is-active "sshd"');
    assert.match(checked.stdout, /profile lab changed; 3 of its 3 machines are out of date/);
    assert.match((await metalCli('profiles', 'show', 'lab')).stdout, /^health check:\s+systemctl is-active "sshd"$/m);
    const badCheck = await runCli(['profiles', 'edit', 'lab', '--health-check', 'true\nreboot'], env);
    assert.notEqual(badCheck.code, 0);
    assert.match(badCheck.stderr, /health_check must be one printable line/);
    const cleared = await metalCli('profiles', 'edit', 'lab', '--health-check', '');
    assert.match(cleared.stdout, /profile lab changed; 0 of its 3 machines are out of date/);
    assert.match((await metalCli('profiles', 'show', 'lab')).stdout, /^health check:\s+-$/m);
    // Skipping the boot check changes how builds are checked, not what they are built from.
    assert.match((await metalCli('profiles', 'show', 'lab')).stdout, /^boot check:\s+as METAL_BUILD_BOOT_CHECK says$/m);
    const skipped = await metalCli('profiles', 'edit', 'lab', '--skip-boot-check');
    assert.match(skipped.stdout, /profile lab changed; 0 of its 3 machines are out of date/);
    assert.match((await metalCli('profiles', 'show', 'lab')).stdout, /^boot check:\s+skipped for its machines$/m);
    await metalCli('profiles', 'edit', 'lab', '--no-skip-boot-check');
    assert.match((await metalCli('profiles', 'show', 'lab')).stdout, /^boot check:\s+as METAL_BUILD_BOOT_CHECK says$/m);
  });

  test('a profile edit makes its machines out of date; metal bulk build --in-profile --out-of-date rebuilds them; a preview changes nothing', async () => {
    writeFileSync(join(dir, 'lab.nix'), '{ ... }:\n{\n  services.openssh.enable = true;\n  services.nginx.enable = true;\n}\n');
    const edit = await metalCli('profiles', 'edit', 'lab', '--config', join(dir, 'lab.nix'));
    assert.match(edit.stdout, /profile lab changed; 3 of its 3 machines are out of date/);
    const stale = await metalCli('machines', 'ls', '--out-of-date', '--json');
    assert.equal((JSON.parse(stale.stdout) as { total: number }).total, 3);
    // `machines show` says how to bring it up to date (`metal build`, not a `machines build` there is none of).
    const shown = await metalCli('machines', 'show', 'LAB0001');
    assert.match(shown.stdout, /out of date:\s+yes \(metal build LAB0001, or metal bulk build --out-of-date for all\)/);
    const dry = await metalCli('bulk', 'build', '-l', 'role=lab', '--dry-run');
    assert.match(dry.stderr, /3 machines matched \(dry run: nothing was changed\)/);
    const nothingPicked = await runCli(['bulk', 'build'], env);
    assert.notEqual(nothingPicked.code, 0);
    assert.match(nothingPicked.stderr, /which machines\? give -l SELECTOR, --in-profile NAME or --out-of-date/);
    const bulk = await metalCli('bulk', 'build', '--in-profile', 'lab', '--out-of-date');
    assert.match(bulk.stdout, /LAB0001\s+ok\s+build \d+/);
    await waitForMachines(metal, ['LAB0001', 'LAB0002', 'LAB0003'], (m) => m.status === 'ready' && !m.out_of_date);
    const preview = await metalCli('rules', 'preview', 'qemu-lab');
    assert.match(preview.stdout, /LAB0001\s+qemu-lab\s+-\s+lab-01/);
    assert.match(preview.stderr, /3 machines would match; nothing was changed/);
    const refused = await runCli(['bulk', 'set', '-l', 'role=lab', '--profile', 'nope'], env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /profile nope does not exist/);
    const inUse = await runCli(['profiles', 'rm', 'lab'], env);
    assert.match(inUse.stderr, /profile lab is used by 3 machines/);
  });
});
