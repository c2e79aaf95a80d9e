import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidInputError } from './errors.ts';
import { assertConfigFiles, configFileNameProblem, MAX_CONFIG_FILES, MAX_CONFIG_FILES_BYTES, sameConfigFiles, singleFileConfig } from './config-files.ts';

describe('configuration file names', () => {
  const cases: Array<[string, string, boolean]> = [
    ['the entry', 'configuration.nix', true],
    ['a second module', 'hardware.nix', true],
    ['one folder deep', 'modules/web.nix', true],
    ['a data file', 'users.json', true],
    ['a public key', 'keys/admin.pub', true],
    ['dashes and underscores', 'a_b-c.d.nix', true],
    ['two folders deep', 'a/b/c.nix', false],
    ['a parent folder', '../etc.nix', false],
    ['a parent folder inside', 'modules/../x.nix', false],
    ['dots inside a segment', 'a..b.nix', false],
    ['absolute', '/etc/passwd.nix', false],
    ['a hidden file', '.secret.nix', false],
    ['a hidden folder', '.git/config.nix', false],
    ['no allowed extension', 'script.py', false],
    ['only the extension', '.nix', false],
    ['a backslash', 'a\\b.nix', false],
    ['a space', 'a b.nix', false],
    ['a NUL', 'a\0.nix', false],
    ['a newline', 'a\n.nix', false],
    ['a trailing slash', 'modules/', false],
    ['empty', '', false],
    ['non-ASCII', 'ü.nix', false],
    ['Nix interpolation', '${x}.nix', false],
    ['too long', `${'a'.repeat(130)}.nix`, false],
  ];
  for (const [name, value, ok] of cases) {
    test(`${name}: ${ok ? 'accepted' : 'refused'}`, () => assert.equal(configFileNameProblem(value) === undefined, ok, configFileNameProblem(value)));
  }
});

describe('configuration maps', () => {
  const refused = (value: unknown, pattern: RegExp) =>
    assert.throws(() => assertConfigFiles(value), (err: unknown) => err instanceof InvalidInputError && pattern.test(err.message));

  test('a valid map comes back with the entry first, then by name', () => {
    const files = assertConfigFiles({ 'z.nix': 'z', 'hardware.nix': 'h', 'configuration.nix': 'c', 'modules/a.nix': 'a' });
    assert.deepEqual(Object.keys(files), ['configuration.nix', 'hardware.nix', 'modules/a.nix', 'z.nix']);
  });

  test('the refusal names the bad file and why', () => {
    refused({ 'configuration.nix': 'c', '../../etc/passwd.nix': 'x' }, /file "\.\.\/\.\.\/etc\/passwd\.nix" is not allowed/);
    refused({ 'configuration.nix': 'c', 'hw.nix': 'a\0b' }, /file "hw\.nix" contains a NUL byte/);
    refused({ 'configuration.nix': 'c', 'hw.nix': 5 }, /file "hw\.nix" must be text/);
    refused({ 'hardware.nix': 'h' }, /must contain configuration\.nix/);
    refused({ 'configuration.nix': 'c', 'm.nix': '', 'm.nix/x.nix': '' }, /"m\.nix" is both a file and a folder/);
    refused(['configuration.nix'], /must be an object/);
    refused(null, /must be an object/);
  });

  test('at most MAX_CONFIG_FILES files and MAX_CONFIG_FILES_BYTES in all', () => {
    const many = Object.fromEntries([['configuration.nix', 'c'], ...Array.from({ length: MAX_CONFIG_FILES }, (_, i) => [`f${i}.nix`, ''])]);
    refused(many, new RegExp(`at most ${MAX_CONFIG_FILES} are allowed`));
    const half = 'x'.repeat(MAX_CONFIG_FILES_BYTES / 2);
    refused({ 'configuration.nix': half, 'hw.nix': half }, /bytes in all/);
    assert.doesNotThrow(() => assertConfigFiles({ 'configuration.nix': half, 'hw.nix': half.slice(100) }));
  });

  test('a text alone is a one-file map; equal maps compare equal whatever their order', () => {
    assert.deepEqual(singleFileConfig('x'), { 'configuration.nix': 'x' });
    assert.equal(sameConfigFiles({ 'configuration.nix': 'c', 'a.nix': 'a' }, { 'a.nix': 'a', 'configuration.nix': 'c' }), true);
    assert.equal(sameConfigFiles({ 'configuration.nix': 'c', 'a.nix': 'a' }, { 'configuration.nix': 'c' }), false);
    assert.equal(sameConfigFiles(null, null), true);
  });
});
