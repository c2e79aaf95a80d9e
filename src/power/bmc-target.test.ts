import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';
import { InvalidInputError } from '../core/errors.ts';
import { BmcPassword, describeBmc, parseBmcAddress, parseFingerprint, type BmcType } from './bmc-target.ts';

describe('parseBmcAddress', () => {
  const accepted: Array<[string, string, BmcType, { host: string; port: number }]> = [
    ['an IPv4 address gets the IPMI port', '10.0.0.21', 'ipmi', { host: '10.0.0.21', port: 623 }],
    ['an IPv4 address gets the HTTPS port for Redfish', '10.0.0.21', 'redfish', { host: '10.0.0.21', port: 443 }],
    ['a host name with a port', 'BMC-r740-01.example.net:6230', 'ipmi', { host: 'bmc-r740-01.example.net', port: 6230 }],
    ['a bracketed IPv6 address with a port', '[fd00::21]:8443', 'redfish', { host: 'fd00::21', port: 8443 }],
    ['a bare IPv6 address', 'fd00::21', 'ipmi', { host: 'fd00::21', port: 623 }],
    ['an https URL without a path (Redfish)', 'https://idrac-01.example.net', 'redfish', { host: 'idrac-01.example.net', port: 443 }],
    ['an https URL with a port and a lone slash (Redfish)', 'https://10.0.0.5:8443/', 'redfish', { host: '10.0.0.5', port: 8443 }],
    ['surrounding spaces are trimmed', '  10.0.0.21  ', 'ipmi', { host: '10.0.0.21', port: 623 }],
  ];
  for (const [name, input, type, expected] of accepted) {
    test(`accepts ${name}`, () => assert.deepEqual(parseBmcAddress(input, type), expected));
  }

  const refused: Array<[string, string, BmcType, RegExp]> = [
    ['a URL with a path', 'https://10.0.0.5/redfish/v1', 'redfish', /a URL with a path, query or fragment; give host\[:port\] only/],
    ['a URL with a query', 'https://10.0.0.5?x=1', 'redfish', /a URL with a path, query or fragment/],
    ['an http URL', 'http://10.0.0.5', 'redfish', /only https:\/\/ is allowed for Redfish/],
    ['any URL for IPMI', 'https://10.0.0.5', 'ipmi', /an IPMI address is host\[:port\], not a URL/],
    ['credentials in the URL', 'https://root:calvin@10.0.0.5', 'redfish', /credentials do not belong in the address/],
    ['a path without a scheme', '10.0.0.5/admin', 'ipmi', /expected host\[:port\]/],
    ['an empty address', '', 'ipmi', /it is empty/],
    ['port zero', '10.0.0.5:0', 'ipmi', /the port must be 1 to 65535/],
    ['a port too large', '10.0.0.5:70000', 'ipmi', /the port must be 1 to 65535/],
    ['a port that is not a number', '10.0.0.5:ipmi', 'ipmi', /the port must be 1 to 65535/],
    ['an impossible IPv4 address', '10.0.0.256', 'ipmi', /not a host name or IP address/],
    ['an option-like host', '-oProxyCommand=x', 'ipmi', /not a host name or IP address/],
    ['shell characters', 'bmc;reboot', 'ipmi', /not a host name or IP address/],
    ['a space inside', 'bmc 01', 'ipmi', /expected host\[:port\]/],
  ];
  for (const [name, input, type, message] of refused) {
    test(`refuses ${name}`, () => {
      assert.throws(() => parseBmcAddress(input, type), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.equal(err.code, 'invalid_input');
        assert.match(err.message, /^bmc address ".*" is invalid: /);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe('parseFingerprint', () => {
  const hex = 'ab'.repeat(32);
  test('accepts 64 hex digits with or without colons and a sha256 prefix, normalised to AB:CD:… form', () => {
    const want = 'AB:'.repeat(31) + 'AB';
    assert.equal(parseFingerprint(hex), want);
    assert.equal(parseFingerprint(want.toLowerCase()), want);
    assert.equal(parseFingerprint(`sha256:${hex}`), want);
  });
  test('refuses a SHA-1 fingerprint and non-hex', () => {
    assert.throws(() => parseFingerprint('ab'.repeat(20)), /must be a SHA-256 fingerprint/);
    assert.throws(() => parseFingerprint('zz'.repeat(32)), /must be a SHA-256 fingerprint/);
  });
});

describe('BmcPassword', () => {
  test('stays hidden in JSON, string conversion and inspection; reveal gives it', () => {
    const password = new BmcPassword('calvin-secret');
    const holder = { username: 'root', password };
    assert.equal(JSON.stringify(holder), '{"username":"root","password":"[hidden]"}');
    assert.equal(`${password}`, '[hidden]');
    assert.doesNotMatch(inspect(holder, { depth: 5 }), /calvin-secret/);
    assert.equal(password.reveal(), 'calvin-secret');
  });
});

test('describeBmc brackets IPv6 and names the protocol', () => {
  assert.equal(describeBmc({ type: 'ipmi', address: { host: 'fd00::21', port: 623 } }), 'ipmi [fd00::21]:623');
  assert.equal(describeBmc({ type: 'redfish', address: { host: '10.0.0.5', port: 443 } }), 'redfish 10.0.0.5:443');
});
