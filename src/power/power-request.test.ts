import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidInputError } from '../core/errors.ts';
import { parseBmcSettings, parsePowerRequest, powerStateBody } from './power-request.ts';

describe('parsePowerRequest', () => {
  test('accepts every action, and boot_device pxe with on, cycle and reset', () => {
    assert.deepEqual(parsePowerRequest({ action: 'status' }), { action: 'status' });
    assert.deepEqual(parsePowerRequest({ action: 'cycle', boot_device: 'pxe' }), { action: 'cycle', bootDevice: 'pxe' });
    for (const action of ['on', 'off', 'cycle', 'reset']) assert.equal(parsePowerRequest({ action }).action, action);
  });

  const refused: Array<[string, unknown, RegExp, string | undefined]> = [
    ['an unknown action', { action: 'explode' }, /action must be one of on, off, cycle, reset, status; got "explode"/, 'action'],
    ['no action', {}, /got nothing/, 'action'],
    ['an action that is not a string', { action: 1 }, /got number/, 'action'],
    ['another boot device', { action: 'on', boot_device: 'disk' }, /boot_device must be "pxe"/, 'boot_device'],
    ['a boot device with off', { action: 'off', boot_device: 'pxe' }, /applies to on, cycle and reset, not off/, 'boot_device'],
    ['not an object', ['on'], /must be a JSON object/, undefined],
  ];
  for (const [name, input, message, field] of refused) {
    test(`refuses ${name}`, () => {
      assert.throws(() => parsePowerRequest(input), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.match(err.message, message);
        assert.equal(err.details?.field, field);
        return true;
      });
    });
  }

  test('powerStateBody is the API shape', () => {
    assert.deepEqual(powerStateBody({ powerState: 'on', checkedAt: new Date('2026-11-28T12:00:00Z') }), { power_state: 'on', checked_at: '2026-11-28T12:00:00.000Z' });
  });
});

describe('parseBmcSettings', () => {
  const fp = 'ab'.repeat(32);

  test('IPMI: address with the default port, password hidden', () => {
    const t = parseBmcSettings({ type: 'ipmi', address: '10.0.0.21', username: 'admin', password: 'calvin' });
    assert.equal(t.type, 'ipmi');
    assert.deepEqual(t.address, { host: '10.0.0.21', port: 623 });
    assert.equal(t.password.reveal(), 'calvin');
    assert.doesNotMatch(JSON.stringify(t), /calvin/);
  });

  test('Redfish: verify_tls defaults to true, session auth, fingerprint normalised', () => {
    const t = parseBmcSettings({ type: 'redfish', address: 'https://idrac-01.example.net', username: 'root', password: 'calvin', tls_fingerprint: fp, system_id: 'System.Embedded.1' });
    assert.equal(t.type, 'redfish');
    if (t.type !== 'redfish') return;
    assert.deepEqual(t.tls, { verify: true, fingerprint: 'AB:'.repeat(31) + 'AB' });
    assert.equal(t.auth, 'session');
    assert.equal(t.systemId, 'System.Embedded.1');
    assert.deepEqual(parseBmcSettings({ type: 'redfish', address: '10.0.0.5', username: 'root', password: 'x', verify_tls: false, auth: 'basic' }).type, 'redfish');
  });

  const base = { type: 'redfish', address: '10.0.0.5', username: 'root', password: 'calvin' };
  const refused: Array<[string, unknown, RegExp, string]> = [
    ['an unknown type', { ...base, type: 'amt' }, /type must be one of ipmi, redfish/, 'type'],
    ['a URL with a path', { ...base, address: 'https://10.0.0.5/redfish/v1' }, /a URL with a path/, 'address'],
    ['no address', { ...base, address: undefined }, /address is required/, 'address'],
    ['an empty user', { ...base, username: '' }, /username is required/, 'username'],
    ['no password', { ...base, password: undefined }, /password is required/, 'password'],
    ['a password with a line break', { ...base, password: 'a\nb' }, /no line breaks/, 'password'],
    ['verify_tls not a boolean', { ...base, verify_tls: 'no' }, /verify_tls must be true or false/, 'verify_tls'],
    ['a SHA-1 fingerprint', { ...base, tls_fingerprint: 'ab'.repeat(20) }, /SHA-256/, 'fingerprint'],
    ['a CA bundle that is not PEM', { ...base, tls_ca_bundle: 'hello' }, /PEM certificates/, 'tls_ca_bundle'],
    ['both pin and CA bundle', { ...base, tls_fingerprint: fp, tls_ca_bundle: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----' }, /not both/, 'tls_fingerprint'],
    ['an unknown auth', { ...base, auth: 'digest' }, /auth must be "session" or "basic"/, 'auth'],
    ['a system id with a slash', { ...base, system_id: '../Managers/1' }, /system_id must be/, 'system_id'],
    ['Redfish options on IPMI', { ...base, type: 'ipmi', verify_tls: false }, /verify_tls applies to Redfish only/, 'verify_tls'],
  ];
  for (const [name, input, message, field] of refused) {
    test(`refuses ${name}, never echoing the password`, () => {
      assert.throws(() => parseBmcSettings(input), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.match(err.message, message);
        assert.equal(err.details?.field, field);
        assert.doesNotMatch(err.message, /calvin/);
        return true;
      });
    });
  }
});
