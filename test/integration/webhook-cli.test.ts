import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApiServer, type ApiServer } from '../support/api-server.ts';
import { FIXTURES } from '../support/builder.ts';
import { runCli } from '../support/cli-process.ts';

describe('metal webhooks against a real server', () => {
  const home = mkdtempSync(join(tmpdir(), 'metal-hooks-cli-'));
  let metal: ApiServer;
  const env = () => ({ XDG_CONFIG_HOME: home, METAL_URL: metal.url, METAL_TOKEN: metal.adminToken });

  before(async () => {
    metal = await startApiServer(FIXTURES.ok);
  });
  after(async () => {
    await metal?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('add prints a generated secret once; ls, set, deliveries and rm work; a refused URL exits non-zero with the reason', { timeout: 120_000 }, async () => {
    const add = await runCli(['webhooks', 'add', 'https://hooks.example.com/metal', '--events', 'machine.enrolled,build.*'], env());
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stderr, /webhook 1 added for https:\/\/hooks\.example\.com\/metal \(machine\.enrolled, build\.\*\)/);
    assert.match(add.stdout.trim(), /^[A-Za-z0-9_-]{32}$/);
    const ls = await runCli(['webhooks', 'ls'], env());
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^ID\s+URL\s+EVENTS\s+ENABLED/m);
    assert.match(ls.stdout, /^1\s+https:\/\/hooks\.example\.com\/metal\s+machine\.enrolled,build\.\*\s+yes/m);
    assert.ok(!ls.stdout.includes(add.stdout.trim()), 'the secret is never listed');
    const off = await runCli(['webhooks', 'set', '1', '--disable'], env());
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /webhook 1 updated \(disabled\)/);
    const json = await runCli(['webhooks', 'ls', '--json'], env());
    assert.equal(JSON.parse(json.stdout).items[0].enabled, false);
    const deliveries = await runCli(['webhooks', 'deliveries', '1'], env());
    assert.equal(deliveries.code, 0, deliveries.stderr);
    assert.match(deliveries.stderr, /no deliveries/);
    const refused = await runCli(['webhooks', 'add', 'http://169.254.169.254/latest', '--events', '*'], env());
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /link-local or cloud metadata/);
    const rm = await runCli(['webhooks', 'rm', '1'], env());
    assert.equal(rm.code, 0, rm.stderr);
    assert.match((await runCli(['webhooks', 'ls'], env())).stderr, /no webhooks/);
  });
});
