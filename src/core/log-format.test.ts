import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatLogLine } from './log-format.ts';

describe('readable log lines (a terminal)', () => {
  const at = Date.UTC(2026, 10, 28, 21, 4, 5);
  const cases: Array<[string, Record<string, unknown> | string, string]> = [
    ['time, level and message', { level: 30, time: at, pid: 1, msg: 'metal: ready' }, '21:04:05 INFO  metal: ready\n'],
    [
      'the fields that matter, a build with its machine',
      { level: 40, time: at, msg: 'builder: build 7 of ABC123 lost its builder', build: 7, service_tag: 'ABC123', action: 'retried', pid: 9, hostname: 'x' },
      '21:04:05 WARN  builder: build 7 of ABC123 lost its builder  service_tag=ABC123 build=7 action=retried\n',
    ],
    ['an error by its message', { level: 50, time: at, msg: 'boot: failed', err: { message: 'disk full', stack: 'x' } }, '21:04:05 ERROR boot: failed  error="disk full"\n'],
    ['a value with spaces is quoted', { level: 30, time: at, msg: 'm', reason: 'two words' }, '21:04:05 INFO  m  reason="two words"\n'],
    ['a line that is not JSON passes through', 'plain text', 'plain text\n'],
  ];
  for (const [rule, input, expected] of cases) {
    test(rule, () => {
      assert.equal(formatLogLine(typeof input === 'string' ? input : JSON.stringify(input)), expected);
    });
  }
});
