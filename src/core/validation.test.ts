import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidInputError } from './errors.ts';
import { assertHostname, assertNixosConfig, isPlaceholderSerial, isServiceTag, normalizeMac } from './validation.ts';

describe('service tags', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a Dell tag', 'ABC1234', true],
    ['an HPE serial', 'CZJ9450B2K', true],
    ['dots, dashes and underscores inside', 'node-01_a.b', true],
    ['64 characters', 'A'.repeat(64), true],
    ['65 characters', 'A'.repeat(65), false],
    ['a path', '../../etc', false],
    ['a leading dot', '.x', false],
    ['a space', 'a b', false],
    ['non-ASCII', 'Ü1', false],
    ['a newline', 'A\n', false],
    ['empty', '', false],
    ['iPXE expansion', '${serial}', false],
  ];
  for (const [name, value, ok] of cases) test(`${name}: ${ok ? 'accepted' : 'rejected'}`, () => assert.equal(isServiceTag(value), ok));
});

describe('placeholder serials', () => {
  for (const v of ['To Be Filled By O.E.M.', 'Default string', 'System Serial Number', 'Not Specified', '0', 'None', '', '  ', '00000000', 'XXXXXXXX']) {
    test(`${JSON.stringify(v)} is a placeholder`, () => assert.equal(isPlaceholderSerial(v), true));
  }
  for (const v of ['ABC123', 'CZJ9450B2K', '0123A']) {
    test(`${JSON.stringify(v)} is a serial`, () => assert.equal(isPlaceholderSerial(v), false));
  }
});

describe('MAC addresses', () => {
  test('normalised to lower case', () => assert.equal(normalizeMac('52:54:00:AB:CD:EF'), '52:54:00:ab:cd:ef'));
  for (const v of ['52:54:00:12:34', '52-54-00-12-34-56', '5254.0012.3456', 'gg:54:00:12:34:56', '52:54:00:12:34:56 ']) {
    test(`${JSON.stringify(v)} is rejected with the field named`, () =>
      assert.throws(() => normalizeMac(v), (e: unknown) => e instanceof InvalidInputError && /mac_address/.test(e.message)));
  }
});

describe('hostnames (RFC 1123 labels)', () => {
  test('lower-cased', () => assert.equal(assertHostname('Web-01'), 'web-01'));
  for (const v of ['-web', 'web-', 'web_01', 'a'.repeat(64), 'web.example', '', 'wéb']) {
    test(`${JSON.stringify(v)} is rejected`, () => assert.throws(() => assertHostname(v), InvalidInputError));
  }
});

describe('NixOS configuration', () => {
  test('256 KiB accepted, one byte more rejected', () => {
    assert.doesNotThrow(() => assertNixosConfig('x'.repeat(256 * 1024)));
    assert.throws(() => assertNixosConfig('x'.repeat(256 * 1024 + 1)), /at most 262144/);
  });
});
