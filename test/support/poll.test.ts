import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pollUntil } from './poll.ts';

test('pollUntil returns the first value that is not undefined or false', async () => {
  let n = 0;
  const value = await pollUntil('n reaches 3', () => (++n >= 3 ? n : false), { timeoutMs: 5000, intervalMs: 1 });
  assert.equal(value, 3);
  assert.equal(await pollUntil('zero counts', async () => 0, { timeoutMs: 100 }), 0, '0 is a value');
});

test('pollUntil gives up after its time with what it waited for and what it saw last', async () => {
  await assert.rejects(
    pollUntil('the door opens', () => undefined, { timeoutMs: 30, intervalMs: 5, state: () => ({ door: 'shut' }) }),
    /^Error: the door opens: not within 30 ms; last seen: \{"door":"shut"\}$/,
  );
});
