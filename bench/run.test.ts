import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const RUN = fileURLToPath(new URL('./run.ts', import.meta.url));

function bench(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', RUN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
}

describe('npm run bench', () => {
  it('names the Debian packages it needs and exits without running anything when tools are missing', () => {
    const r = bench(['--only', 'boot-scripts,enrollment'], { PATH: '/nonexistent' });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /missing: nginx, wrk; install with: apt-get install -y --no-install-recommends nginx-light wrk/);
    assert.doesNotMatch(r.stdout, /boot-scripts…/);
  });

  it('refuses an unknown benchmark and lists the known ones', () => {
    const r = bench(['--only', 'boot-scripts,everything']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown benchmark everything; choose from boot-scripts, boot-table, images, enrollment, build-latency, api-listing, backup/);
  });

  it('explains its options', () => {
    const r = bench(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--quick/);
    assert.match(r.stdout, /--only/);
  });
});
