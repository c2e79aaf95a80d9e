import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBootHealth, MAX_HEALTH_OUTPUT } from './boot-health.ts';
import { InvalidInputError } from './errors.ts';

test('a booted report’s health result: ok, an exit code or null, bounded output, nothing else', () => {
  const accepted: Array<[string, unknown, unknown]> = [
    ['passed', { ok: true, exit_code: 0, output: 'active\n' }, { ok: true, exit_code: 0, output: 'active\n' }],
    ['failed', { ok: false, exit_code: 3, output: 'inactive' }, { ok: false, exit_code: 3, output: 'inactive' }],
    ['stopped by its timeout: no exit code', { ok: false, exit_code: null, output: '' }, { ok: false, exit_code: null, output: '' }],
    ['exit code and output may be left out', { ok: true }, { ok: true, exit_code: null, output: '' }],
    ['the longest output', { ok: true, exit_code: 0, output: 'x'.repeat(MAX_HEALTH_OUTPUT) }, { ok: true, exit_code: 0, output: 'x'.repeat(MAX_HEALTH_OUTPUT) }],
  ];
  for (const [name, value, expected] of accepted) assert.deepEqual(assertBootHealth(value), expected, name);
  const refused: Array<[string, unknown]> = [
    ['not an object', 'ok'],
    ['null', null],
    ['a list', [true]],
    ['ok missing', { exit_code: 0 }],
    ['ok not a boolean', { ok: 'true' }],
    ['a negative exit code', { ok: false, exit_code: -1 }],
    ['an exit code above 255', { ok: false, exit_code: 256 }],
    ['a fractional exit code', { ok: false, exit_code: 1.5 }],
    ['output not a string', { ok: true, output: 42 }],
    ['output too long', { ok: true, output: 'x'.repeat(MAX_HEALTH_OUTPUT + 1) }],
    ['an unknown field', { ok: true, command: 'reboot' }],
  ];
  for (const [name, value] of refused) {
    assert.throws(() => assertBootHealth(value), (err: unknown) => err instanceof InvalidInputError && err.details?.field === 'health', name);
  }
});
