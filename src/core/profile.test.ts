import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from './errors.ts';
import { assertHealthCheck, assertProfileFields, MAX_HEALTH_CHECK_LENGTH } from './profile.ts';

const refused = (err: unknown) => err instanceof InvalidInputError && err.details?.field === 'health_check';

test('a health check is one printable line of bounded length; null or blank means none', () => {
  const accepted: Array<[string, unknown, string | null]> = [
    ['a command line', 'systemctl is-active nginx', 'systemctl is-active nginx'],
    ['shell syntax is the command’s own business (it runs in the image)', 'curl -sf "http://localhost:8080/ok" && test -e /run/ok', 'curl -sf "http://localhost:8080/ok" && test -e /run/ok'],
    ['null removes it', null, null],
    ['empty removes it', '', null],
    ['blank removes it', '   ', null],
    ['the longest', 'x'.repeat(MAX_HEALTH_CHECK_LENGTH), 'x'.repeat(MAX_HEALTH_CHECK_LENGTH)],
  ];
  for (const [name, value, expected] of accepted) assert.equal(assertHealthCheck(value), expected, name);
  const refusedCases: Array<[string, unknown]> = [
    ['a newline', 'true\nreboot'],
    ['a carriage return', 'true\rreboot'],
    ['NUL', 'true\u0000'],
    ['escape', '\u001b[2J'],
    ['DEL', 'a\u007f'],
    ['a line separator', 'a\u2028b'],
    ['too long', 'x'.repeat(MAX_HEALTH_CHECK_LENGTH + 1)],
    ['not a string', 42],
    ['a list', ['true']],
  ];
  for (const [name, value] of refusedCases) assert.throws(() => assertHealthCheck(value), refused, name);
});

test('profile fields carry the health check only when given', () => {
  assert.equal(assertProfileFields({ health_check: 'true' }, false).health_check, 'true');
  assert.equal('health_check' in assertProfileFields({}, false), false);
  assert.equal(assertProfileFields({ health_check: null }, false).health_check, null);
});
