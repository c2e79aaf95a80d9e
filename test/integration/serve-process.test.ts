import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runMetal, startServerProcess } from '../support/server-process.ts';

describe('metal serve as a process', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-serve-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('a bad setting stops start-up with a message naming the key and the value', async () => {
    const r = await runMetal(['serve'], { METAL_DATA_DIR: dataDir, METAL_BUILD_TIMEOUT: 'forever' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_BUILD_TIMEOUT="forever" is invalid/);
  });

  test('a flag names its key too', async () => {
    const r = await runMetal(['serve', '--listen', 'nowhere'], { METAL_DATA_DIR: dataDir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_LISTEN="nowhere" is invalid/);
  });

  test('an unknown role is refused', async () => {
    const r = await runMetal(['serve', '--roles', 'api,dhcp'], { METAL_DATA_DIR: dataDir });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown role "dhcp"/);
  });

  test('metal migrate brings the schema up to date, then says so', async () => {
    const env = { METAL_DATA_DIR: dataDir };
    const first = await runMetal(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied: 0001-initial/);
    const second = await runMetal(['migrate'], env);
    assert.match(second.stdout, /the schema is up to date/);
  });

  test('all roles start, answer, and stop gracefully on SIGTERM', async () => {
    const server = await startServerProcess(['serve'], { METAL_DATA_DIR: dataDir });
    assert.ok(server.addresses.api && server.addresses.boot);
    const health = await fetch(`${server.addresses.api}/readyz`);
    assert.equal(health.status, 200);
    const viaBoot = await fetch(`${server.addresses.boot}/healthz`);
    assert.equal(viaBoot.status, 200);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
  });
});
