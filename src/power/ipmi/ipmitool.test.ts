import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PowerError, type PowerErrorKind } from '../power-error.ts';
import { classifyIpmitoolFailure, ipmitoolArgs } from './ipmitool.ts';

describe('ipmitoolArgs', () => {
  test('lanplus, the address, the user and -E (password from the environment), then the command', () => {
    assert.deepEqual(ipmitoolArgs({ address: { host: '10.0.0.21', port: 623 }, username: 'admin', command: ['chassis', 'power', 'status'] }), [
      '-I', 'lanplus', '-C', '3', '-H', '10.0.0.21', '-p', '623', '-U', 'admin', '-E', '-N', '2', '-R', '2', '-v', 'chassis', 'power', 'status',
    ]);
  });

  for (const [name, username] of [['empty', ''], ['too long for IPMI', 'a'.repeat(17)], ['with a newline', 'ad\nmin'], ['starting with a space', ' admin']] as const) {
    test(`refuses a user name that is ${name}`, () => {
      assert.throws(() => ipmitoolArgs({ address: { host: '10.0.0.21', port: 623 }, username, command: [] }), /the user name must be 1 to 16 printable ASCII characters/);
    });
  }
});

describe('classifyIpmitoolFailure: what ipmitool printed, as a kind of failure naming the BMC\'s answer', () => {
  const noise = 'Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\n';
  const cases: Array<[string, string, PowerErrorKind, RegExp]> = [
    ['wrong password', `${noise}> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n`, 'auth_failed', /refused the user name or password \(RAKP 2 HMAC is invalid\)/],
    ['unknown user', `${noise}RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n`, 'auth_failed', /\(RAKP 2 message indicates an error : unauthorized name\)/],
    ['nothing answered', `${noise}Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n`, 'unreachable', /no IPMI answer from 10\.0\.0\.21:623 \(Get Auth Capabilities error\)/],
    ['a name that does not resolve', 'Address lookup for bmc.invalid failed\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'unreachable', /Address lookup for bmc\.invalid failed/],
    ['a session that fails otherwise', 'Error: Unable to establish IPMI v2 / RMCP+ session\n', 'unreachable', /could not open a session with 10\.0\.0\.21:623/],
    ['the BMC refuses the command', `${noise}Set Chassis Power Control to Reset failed: Invalid data field in request\n`, 'refused', /answered: Set Chassis Power Control to Reset failed: Invalid data field in request/],
  ];
  for (const [name, stderr, kind, message] of cases) {
    test(name, () => {
      const err = classifyIpmitoolFailure('10.0.0.21:623', '', stderr);
      assert.ok(err instanceof PowerError);
      assert.equal(err.kind, kind);
      assert.match(err.message, message);
      assert.ok(err.bmcAnswer && !/IANA|VSO/.test(err.bmcAnswer), 'verbose noise is never the answer');
    });
  }
});
