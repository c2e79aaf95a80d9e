import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidInputError } from './errors.ts';
import { applyLabelArgs, assertLabels, formatSelector, matchesSelector, parseSelector } from './labels.ts';

describe('label selectors', () => {
  const cases: Array<[string, string]> = [
    ['role=web', 'role=web'],
    ['role==web', 'role=web'],
    ['role = web , rack in ( r12 , r13 ) , !gpu', 'role=web,rack in (r12,r13),!gpu'],
    ['env!=prod', 'env!=prod'],
    ['env notin (prod,staging)', 'env notin (prod,staging)'],
    ['example.com/rack', 'example.com/rack'],
    ['tier=', 'tier='],
    ['', ''],
  ];
  for (const [text, canonical] of cases) {
    test(`parses ${JSON.stringify(text)}`, () => {
      assert.equal(formatSelector(parseSelector(text)), canonical);
      assert.deepEqual(parseSelector(formatSelector(parseSelector(text))), parseSelector(text), 'the canonical form parses to the same selector');
    });
  }

  const bad: Array<[string, RegExp]> = [
    ['role=', /./],
    ['role=web,', /expected a label key at the end/],
    ['role in web', /expected "\("/],
    ['role in (web', /expected ","/],
    ['role == web extra', /expected ","/],
    ['role ~ web', /expected "=", "==", "!=", "in", "notin"/],
    ['-role=web', /label key "-role"/],
    ['Example.com/role=web', /prefix/],
    ['role=we b', /expected ","/],
    ['role=-web', /value "-web"/],
    [`role=${'a'.repeat(64)}`, /1-63/],
    ['x'.repeat(2000), /at most 1024/],
    ['role=web;rm -rf /', /expected ","/],
  ];
  for (const [text, why] of bad) {
    test(`refuses ${JSON.stringify(text.slice(0, 40))}`, () => {
      if (text === 'role=') {
        // An empty value is allowed (Kubernetes allows it): `role=` selects machines whose role is "".
        assert.equal(matchesSelector({ role: '' }, parseSelector(text)), true);
        return;
      }
      assert.throws(() => parseSelector(text), (err: unknown) => err instanceof InvalidInputError && why.test(err.message));
    });
  }

  test('matches as Kubernetes does: != and notin also match machines without the label', () => {
    const web = { role: 'web', rack: 'r12' };
    const bare = {};
    const m = (sel: string, labels: Record<string, string>) => matchesSelector(labels, parseSelector(sel));
    assert.equal(m('role=web', web), true);
    assert.equal(m('role=web', bare), false);
    assert.equal(m('role!=db', web), true);
    assert.equal(m('role!=db', bare), true);
    assert.equal(m('role!=web', web), false);
    assert.equal(m('rack in (r11,r12)', web), true);
    assert.equal(m('rack notin (r11,r12)', web), false);
    assert.equal(m('rack notin (r11,r12)', bare), true);
    assert.equal(m('rack,!gpu', web), true);
    assert.equal(m('gpu', web), false);
    assert.equal(m('', bare), true);
  });
});

describe('label maps', () => {
  test('are checked key by key, and sorted', () => {
    assert.deepEqual(Object.keys(assertLabels({ rack: 'r1', env: 'prod', 'metal.example/tier': '' })), ['env', 'metal.example/tier', 'rack']);
    for (const [input, why] of [
      [[], /must be an object/],
      [null, /must be an object/],
      [{ 'bad key': 'x' }, /label key "bad key"/],
      [{ '/x': 'x' }, /prefix/],
      [{ ok: 5 }, /must be a string/],
      [{ ok: 'a/b' }, /value "a\/b"/],
      [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])), /at most 64 labels/],
    ] as const) {
      assert.throws(() => assertLabels(input), (err: unknown) => err instanceof InvalidInputError && why.test(err.message), JSON.stringify(input).slice(0, 60));
    }
  });

  test('kubectl-style arguments set and remove labels', () => {
    assert.deepEqual(applyLabelArgs({ a: '1', b: '2' }, ['role=web', 'a-', 'b=3', 'empty=']), { b: '3', empty: '', role: 'web' });
    assert.throws(() => applyLabelArgs({}, ['role']), /expected key=value/);
    assert.throws(() => applyLabelArgs({}, ['=web']), /expected key=value/);
    assert.throws(() => applyLabelArgs({}, ['ro le=web']), /label key "ro le"/);
  });
});
