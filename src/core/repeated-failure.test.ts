import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { RepeatedFailure } from './repeated-failure.ts';

test('a failure that repeats is logged at once, then once a minute, and its end once', () => {
  const lines: Array<{ level: number; msg: string; failures?: number; err?: { message: string } }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  let now = 1_000_000;
  const failure = new RepeatedFailure(logger, 'boot: could not read machine changes', 'boot: machine changes are read again', { now: () => now });
  failure.succeeded();
  assert.equal(lines.length, 0, 'a success with no failure before it says nothing');
  // A ten-minute outage retried every second.
  for (let second = 0; second < 600; second++) {
    failure.failed(new Error(`connect ECONNREFUSED (${second})`));
    now += 1000;
  }
  assert.equal(lines.length, 10, 'the first failure and one line a minute after it');
  assert.deepEqual([lines[0]!.msg, lines[0]!.err?.message, lines[0]!.level], ['boot: could not read machine changes', 'connect ECONNREFUSED (0)', 40]);
  assert.equal(lines[1]!.msg, 'boot: could not read machine changes (still failing: 61 times in 60 s)');
  assert.equal(lines[1]!.err?.message, 'connect ECONNREFUSED (60)', 'with the latest error');
  failure.succeeded();
  assert.deepEqual([lines[10]!.msg, lines[10]!.level, lines[10]!.failures], ['boot: machine changes are read again after 600 failures in 600 s', 30, 600]);
  failure.succeeded();
  failure.failed(new Error('again'));
  assert.equal(lines.length, 12, 'a new outage is logged at once again');
  assert.equal(lines[11]!.msg, 'boot: could not read machine changes');
});
