import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeBuildNixpkgs, distinctNixpkgs, shortNixpkgs } from './build-nixpkgs.ts';

const REV = 'abcdef0123456789abcdef0123456789abcdef01';

test('a build\'s nixpkgs in short: the revision\'s first 12 characters, else the version, else -', () => {
  assert.equal(shortNixpkgs({ revision: REV, version: '24.05.1' }), 'abcdef012345');
  assert.equal(shortNixpkgs({ revision: null, version: '24.05.1' }), '24.05.1');
  assert.equal(shortNixpkgs({ revision: null, version: null }), '-');
  assert.equal(shortNixpkgs(null), '-');
});

test('a build\'s nixpkgs in full, and what is unknown said so', () => {
  assert.equal(
    describeBuildNixpkgs({ version: '24.05.1', revision: REV, source: 'https://example.org/n.tar.gz', sha256: '0'.repeat(52) }),
    `24.05.1, revision ${REV}, sha256 ${'0'.repeat(52)}, from https://example.org/n.tar.gz`,
  );
  assert.equal(describeBuildNixpkgs({ version: null, revision: null, source: '/srv/nixpkgs', sha256: null }), 'version unknown, revision unknown, from /srv/nixpkgs');
  assert.equal(describeBuildNixpkgs(null), 'unknown (the entry recorded none)');
});

test('distinct nixpkgs among builds: by revision, else by version; unknown ones do not count', () => {
  assert.deepEqual(distinctNixpkgs([{ revision: REV, version: 'a' }, { revision: REV, version: 'b' }, null, { revision: null, version: null }]), ['abcdef012345']);
  assert.deepEqual(distinctNixpkgs([{ revision: REV, version: 'a' }, { revision: 'f'.repeat(40), version: 'a' }, { revision: null, version: '23.11' }]), ['abcdef012345', 'ffffffffffff', '23.11']);
});
