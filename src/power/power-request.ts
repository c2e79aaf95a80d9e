import { InvalidInputError } from '../core/errors.ts';
import { BMC_TYPES, BmcPassword, parseBmcAddress, parseFingerprint, type BmcTarget } from './bmc-target.ts';
import { POWER_ACTIONS, type PowerAction } from './power-driver.ts';
import type { PowerRequest, PowerResult } from './power-runner.ts';

/**
 * Edge validation for power input as clients send it (snake_case JSON): a power request, and a BMC's
 * settings. Every refusal is an InvalidInputError naming the field; nothing is echoed that could be a secret.
 */

/** `{action, boot_device?}` → PowerRequest. */
export function parsePowerRequest(input: unknown): PowerRequest {
  const body = asObject(input, 'the power request');
  const action = body.action;
  if (typeof action !== 'string' || !(POWER_ACTIONS as readonly string[]).includes(action)) {
    throw new InvalidInputError(`action must be one of ${POWER_ACTIONS.join(', ')}; got ${shown(action)}`, { field: 'action' });
  }
  const bootDevice = body.boot_device;
  if (bootDevice !== undefined && bootDevice !== null && bootDevice !== 'pxe') {
    throw new InvalidInputError(`boot_device must be "pxe" when given; got ${shown(bootDevice)}`, { field: 'boot_device' });
  }
  if (bootDevice === 'pxe' && (action === 'off' || action === 'status')) {
    throw new InvalidInputError(`boot_device applies to on, cycle and reset, not ${action}`, { field: 'boot_device' });
  }
  return bootDevice === 'pxe' ? { action: action as PowerAction, bootDevice } : { action: action as PowerAction };
}

/** The API's answer body for a state: `{power_state, checked_at}`. */
export function powerStateBody(result: PowerResult): { power_state: PowerResult['powerState']; checked_at: string } {
  return { power_state: result.powerState, checked_at: result.checkedAt.toISOString() };
}

/** Longest CA bundle accepted, in characters. */
const MAX_CA_BUNDLE = 64 * 1024;

/**
 * `{type, address, username, password, verify_tls?, tls_fingerprint?, tls_ca_bundle?, auth?, system_id?}`
 * → BmcTarget. The password is required here; a caller that keeps a stored one fills it in first.
 */
export function parseBmcSettings(input: unknown): BmcTarget {
  const body = asObject(input, 'the BMC settings');
  const type = body.type;
  if (typeof type !== 'string' || !(BMC_TYPES as readonly string[]).includes(type)) {
    throw new InvalidInputError(`type must be one of ${BMC_TYPES.join(', ')}; got ${shown(type)}`, { field: 'type' });
  }
  if (typeof body.address !== 'string') throw new InvalidInputError('address is required: host[:port]', { field: 'address' });
  const address = parseBmcAddress(body.address, type as BmcTarget['type']);
  const username = body.username;
  // eslint-disable-next-line no-control-regex
  if (typeof username !== 'string' || username.length < 1 || username.length > 64 || /[\u0000-\u001f\u007f:]/.test(username)) {
    throw new InvalidInputError('username is required: 1 to 64 characters, no control characters or colons', { field: 'username' });
  }
  const password = body.password;
  // eslint-disable-next-line no-control-regex
  if (typeof password !== 'string' || password.length < 1 || password.length > 256 || /[\u0000\n\r]/.test(password)) {
    throw new InvalidInputError('password is required: 1 to 256 characters, no line breaks', { field: 'password' });
  }
  if (type === 'ipmi') {
    for (const field of ['verify_tls', 'tls_fingerprint', 'tls_ca_bundle', 'auth', 'system_id']) {
      if (body[field] !== undefined) throw new InvalidInputError(`${field} applies to Redfish only`, { field });
    }
    return { type: 'ipmi', address, username, password: new BmcPassword(password) };
  }
  const verify = body.verify_tls ?? true;
  if (typeof verify !== 'boolean') throw new InvalidInputError('verify_tls must be true or false', { field: 'verify_tls' });
  const fingerprint = body.tls_fingerprint;
  if (fingerprint !== undefined && typeof fingerprint !== 'string') throw new InvalidInputError('tls_fingerprint must be a string', { field: 'tls_fingerprint' });
  const caBundle = body.tls_ca_bundle;
  if (caBundle !== undefined && (typeof caBundle !== 'string' || caBundle.length > MAX_CA_BUNDLE || !caBundle.includes('-----BEGIN CERTIFICATE-----'))) {
    throw new InvalidInputError(`tls_ca_bundle must be PEM certificates (at most ${MAX_CA_BUNDLE} characters)`, { field: 'tls_ca_bundle' });
  }
  if (fingerprint !== undefined && caBundle !== undefined) {
    throw new InvalidInputError('give tls_fingerprint or tls_ca_bundle, not both', { field: 'tls_fingerprint' });
  }
  const auth = body.auth ?? 'session';
  if (auth !== 'session' && auth !== 'basic') throw new InvalidInputError('auth must be "session" or "basic"', { field: 'auth' });
  const systemId = body.system_id;
  if (systemId !== undefined && (typeof systemId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(systemId))) {
    throw new InvalidInputError('system_id must be 1 to 64 characters of A-Z a-z 0-9 . _ -', { field: 'system_id' });
  }
  return {
    type: 'redfish',
    address,
    username,
    password: new BmcPassword(password),
    tls: { verify, ...(fingerprint !== undefined ? { fingerprint: parseFingerprint(fingerprint) } : {}), ...(caBundle !== undefined ? { caBundle } : {}) },
    auth,
    ...(systemId !== undefined ? { systemId } : {}),
  };
}

function asObject(input: unknown, what: string): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new InvalidInputError(`${what} must be a JSON object`);
  return input as Record<string, unknown>;
}

/** A short, safe rendering of a rejected value. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return value === undefined ? 'nothing' : typeof value;
}
