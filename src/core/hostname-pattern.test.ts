import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dnsLabelOf, freeNumbers, hostnameFor, nameTemplate, numberIn, parseHostnamePattern } from './hostname-pattern.ts';

describe('hostname patterns', () => {
  const accepted: Array<[string, string, { tag: string; labels?: Record<string, string>; n: number }, string]> = [
    ['{n} is the number as is', 'web-{n}', { tag: 'A1', n: 7 }, 'web-7'],
    ['{n:03} pads to three digits', 'web-{n:03}', { tag: 'A1', n: 7 }, 'web-007'],
    ['a padded number longer than its width is written whole', 'web-{n:02}', { tag: 'A1', n: 123 }, 'web-123'],
    ['{tag} is the service tag lower-cased', 'node-{tag}', { tag: 'CZJ9450B2K', n: 1 }, 'node-czj9450b2k'],
    ['{tag} turns other characters into "-"', '{tag}', { tag: 'ABC_12.3', n: 1 }, 'abc-12-3'],
    ['{label.KEY} is the label value made a DNS label', 'db-{label.rack}-{n}', { tag: 'A1', labels: { rack: 'R12' }, n: 2 }, 'db-r12-2'],
    ['a prefixed label key', '{label.example.com/rack}-{n}', { tag: 'A1', labels: { 'example.com/rack': 'r1' }, n: 1 }, 'r1-1'],
  ];
  for (const [rule, pattern, subject, expected] of accepted) {
    test(rule, () => {
      const template = nameTemplate(parseHostnamePattern(pattern), { serviceTag: subject.tag, labels: subject.labels ?? {} });
      assert.equal(hostnameFor(template, subject.n), expected);
    });
  }

  const refused: Array<[string, unknown, RegExp]> = [
    ['an unknown placeholder is named', 'web-{id}', /unknown placeholder \{id\}/],
    ['a pattern without {n} or {tag} would collide', 'web', /numbers would collide/],
    ['a label alone still collides', 'web-{label.rack}', /numbers would collide/],
    ['two {n} are refused', '{n}-{n}', /more than one \{n\}/],
    ['upper-case text is not a DNS label', 'Web-{n}', /only lower-case letters/],
    ['a leading "-" is not a DNS label', '-{n}', /does not give a DNS label/],
    ['a trailing "-" is not a DNS label', '{n}-', /does not give a DNS label/],
    ['an unmatched brace', 'web-{n', /unmatched/],
    ['a bad width', 'web-{n:3}', /unknown placeholder \{n:3\}/],
    ['a bad label key', '{label.-x}-{n}', /label key/],
    ['dots are not allowed in a hostname', 'web.{n}', /only lower-case letters/],
    ['too long', `${'a'.repeat(130)}{n}`, /longer than 128/],
    ['not a string', 42, /non-empty string/],
    ['longer than 63 once filled', `${'a'.repeat(63)}{n}`, /does not give a DNS label/],
  ];
  for (const [rule, pattern, message] of refused) {
    test(`refused: ${rule}`, () => assert.throws(() => parseHostnamePattern(pattern), message));
  }

  test('a missing label is named when the machine is named', () => {
    assert.throws(() => nameTemplate(parseHostnamePattern('db-{label.rack}-{n}'), { serviceTag: 'A1', labels: {} }), /needs label rack/);
  });

  test('numberIn reads back only the names the pattern writes', () => {
    const t = nameTemplate(parseHostnamePattern('web-{n:03}'), { serviceTag: 'A1', labels: {} });
    assert.equal(numberIn(t, 'web-007'), 7);
    assert.equal(numberIn(t, 'web-1234'), 1234);
    assert.equal(numberIn(t, 'web-07'), undefined, 'not the padded form');
    assert.equal(numberIn(t, 'web-0070'), undefined, 'a leading zero beyond the width');
    assert.equal(numberIn(t, 'web-x07'), undefined);
    assert.equal(numberIn(t, 'db-007'), undefined);
  });

  test('freeNumbers: the smallest numbers not held, in order (a held number is never reused)', () => {
    assert.deepEqual(freeNumbers(new Set([1, 2, 4]), 3), [3, 5, 6]);
    assert.deepEqual(freeNumbers(new Set(), 2), [1, 2]);
  });

  test('dnsLabelOf', () => {
    assert.equal(dnsLabelOf('--A b__c--'), 'a-b-c');
    assert.equal(dnsLabelOf('___'), '');
  });
});
