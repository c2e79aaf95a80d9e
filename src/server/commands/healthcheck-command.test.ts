import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { TEST_POSTGRES_URL, isPostgresAvailable } from '../../../test/support/databases.ts';

const METAL = fileURLToPath(new URL('../../../bin/metal.js', import.meta.url));
const hasPostgres = await isPostgresAvailable();

function healthcheck(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [METAL, 'healthcheck'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('metal healthcheck', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-healthcheck-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('exit 0 when the database answers (SQLite)', { timeout: 30_000 }, async () => {
    const r = await healthcheck({ METAL_DATA_DIR: dataDir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'healthcheck: the database answers\n');
  });

  test('exit 0 when the database answers (PostgreSQL)', { timeout: 30_000, skip: !hasPostgres }, async () => {
    const r = await healthcheck({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: TEST_POSTGRES_URL });
    assert.equal(r.code, 0, r.stderr);
  });

  test('exit 1 with the reason when nothing answers', { timeout: 30_000 }, async () => {
    // A port that was free a moment ago: connections are refused.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address() as { port: number };
        server.close(() => resolve(address.port));
      });
    });
    const r = await healthcheck({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: `postgres://metal@127.0.0.1:${port}/metal` });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^healthcheck: the database does not answer: .*ECONNREFUSED/);
  });

  test('an invalid setting exits 2 naming its key', { timeout: 30_000 }, async () => {
    const r = await healthcheck({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: 'mysql://db' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_DATABASE_URL="mysql:\/\/db" is invalid/);
  });
});
