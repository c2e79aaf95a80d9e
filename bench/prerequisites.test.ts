import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { missingTools, NGINX, WRK } from './prerequisites.ts';

describe('missingTools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-bench-path-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'nginx'), '#!/bin/sh\n');
  chmodSync(join(dir, 'nginx'), 0o755);
  writeFileSync(join(dir, 'wrk'), 'not executable');

  it('names only the missing programs and the Debian packages to install, once each', () => {
    const { missing, advice } = missingTools([NGINX, WRK, WRK], dir);
    assert.deepEqual(missing, [WRK]);
    assert.equal(advice, 'missing: wrk; install with: apt-get install -y --no-install-recommends wrk');
  });

  it('says nothing when everything is there', () => {
    assert.deepEqual(missingTools([NGINX], dir), { missing: [], advice: '' });
  });
});
