import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatResultNixpkgs, readResultNixpkgs } from './result-nixpkgs.ts';

test('formatResultNixpkgs: one line for the build log, what is unknown said so', () => {
  const cases: Array<[string, unknown, string | undefined]> = [
    ['a checkout', { source: '/srv/nixpkgs', sha256: null, version: '24.05.1234.abcdef0', revision: 'abcdef0' }, 'nixpkgs 24.05.1234.abcdef0 (revision abcdef0) from /srv/nixpkgs'],
    ['a tarball', { source: 'https://x/n.tar.gz', sha256: 'sha256-abc=', version: '24.05pre-git', revision: null }, 'nixpkgs 24.05pre-git (revision unknown, sha256 sha256-abc=) from https://x/n.tar.gz'],
    ['nothing known', {}, undefined],
    ['not an object', 'nixpkgs', undefined],
    ['a control character', { source: '/srv/\u001b[2Jnixpkgs', version: '24.05' }, 'nixpkgs 24.05 (revision unknown)'],
  ];
  for (const [name, value, expected] of cases) assert.equal(formatResultNixpkgs(value as never), expected, name);
});

test('readResultNixpkgs: from a result directory; none for a custom entry or no boot.json', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-result-nixpkgs-'));
  try {
    assert.equal(await readResultNixpkgs(dir), undefined);
    writeFileSync(join(dir, 'boot.json'), JSON.stringify({ init: '/x/init', kernel_params: [] }));
    assert.equal(await readResultNixpkgs(dir), undefined);
    writeFileSync(join(dir, 'boot.json'), JSON.stringify({ nixpkgs: { source: '/srv/nixpkgs', version: '24.05.1.a', revision: 'a' } }));
    assert.equal(await readResultNixpkgs(dir), 'nixpkgs 24.05.1.a (revision a) from /srv/nixpkgs');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
