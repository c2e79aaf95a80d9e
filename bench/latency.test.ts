import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { percentile, summariseLatencies } from './latency.ts';

describe('percentile (nearest rank)', () => {
  const cases: Array<[string, number[], number, number]> = [
    ['p50 of 1..100 is 50', Array.from({ length: 100 }, (_, i) => i + 1), 50, 50],
    ['p99 of 1..100 is 99', Array.from({ length: 100 }, (_, i) => i + 1), 99, 99],
    ['p99 of 1..1000 is 990', Array.from({ length: 1000 }, (_, i) => i + 1), 99, 990],
    ['p100 is the maximum', [1, 2, 3], 100, 3],
    ['p0 is the minimum', [4, 5, 6], 0, 4],
    ['one value is every percentile', [7], 99, 7],
  ];
  for (const [name, values, p, expected] of cases) it(name, () => assert.equal(percentile(values, p), expected));
  it('is NaN for no values', () => assert.ok(Number.isNaN(percentile([], 50))));
});

describe('summariseLatencies', () => {
  it('sorts before ranking and reports max and mean', () => {
    const s = summariseLatencies([30, 10, 20, 40]);
    assert.deepEqual(s, { count: 4, p50: 20, p90: 40, p99: 40, max: 40, mean: 25 });
  });
});
