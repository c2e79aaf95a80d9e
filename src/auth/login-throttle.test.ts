import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { RateLimitedError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';
import { AuthService, loginAddressKey } from './auth-service.ts';

// Issue 13, item 5: five wrong passwords from any address used to lock the user (the admin too) for
// everyone, renewable forever with one request every 180 s. Failures now count per (address, user)
// and per address; a correct password from an address that has not failed always signs in.
// Issue 19: the counts are kept in the database, so N replicas together allow what one would
// (test/integration/shared-limits.test.ts).

describe('sign-in throttling', () => {
  let t: AuthTestContext;
  before(async () => {
    t = await createAuthTestContext(freshSqlite());
  });
  after(() => t.close());

  const loginAs = (username: string, password: string, remoteAddress: string) =>
    t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress });

  test('the lockout attack: many failures for admin from address A do not stop admin signing in from address B', async () => {
    // The attacker keeps going past the limit, as the renewal attack did.
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await loginAs('admin', `wrong-${i}-password`, '198.51.100.7')).statusCode);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    const fromB = await loginAs('admin', TEST_ADMIN_PASSWORD, '203.0.113.20');
    assert.equal(fromB.statusCode, 200, fromB.body);
    // The dashboard's form goes through the same limiter.
    const form = await t.app.inject({
      method: 'POST',
      url: '/login',
      payload: `username=admin&password=${encodeURIComponent(TEST_ADMIN_PASSWORD)}&next=%2F`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      remoteAddress: '203.0.113.21',
    });
    assert.equal(form.statusCode, 303, form.body);
    assert.match(String(form.headers['set-cookie']), /^metal_session=ms_/);
  });

  test('address A gets 429 after its budget for that user, with a clear body and Retry-After, even with the right password', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await loginAs('admin', `nope-${i}-password`, '198.51.100.8')).statusCode, 401);
    const r = await loginAs('admin', TEST_ADMIN_PASSWORD, '198.51.100.8');
    assert.equal(r.statusCode, 429);
    assert.equal(r.json().error.code, 'rate_limited');
    assert.match(r.json().error.message, /too many failed sign-in attempts from this address; try again in \d+ s/);
    assert.ok(Number(r.headers['retry-after']) >= 1);
  });

  test('the per-address limit counts across usernames and spares other addresses', async () => {
    let tries = 0;
    let status = 0;
    while (tries < 30 && status !== 429) status = (await loginAs(`user${tries++}`, 'wrong-password', '198.51.100.9')).statusCode;
    assert.equal(status, 429);
    assert.equal(tries, 21, 'twenty failures are allowed per address');
    assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '198.51.100.9')).statusCode, 429, 'the address is held for every user');
    assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '198.51.100.10')).statusCode, 200);
  });

  test('an IPv6 attacker cannot rotate addresses inside one /64', async () => {
    let status = 0;
    let tries = 0;
    while (tries < 30 && status !== 429) status = (await loginAs('admin', 'wrong-password', `2001:db8:1:2::${(tries++).toString(16)}`)).statusCode;
    assert.equal(status, 429);
    assert.equal(tries, 6, 'five failures per (address, user), counted over the /64');
    assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '2001:db8:1:3::1')).statusCode, 200, 'the next /64 is another address');
  });

  test('a successful sign-in gives the address its budget back', async () => {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) assert.equal((await loginAs('admin', 'typo-password', '198.51.100.11')).statusCode, 401);
      assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '198.51.100.11')).statusCode, 200, `round ${round}`);
    }
  });

  test('the throttle lives in the database: another AuthService on it (a replica, or this one restarted) still refuses', async () => {
    for (let i = 0; i < 6; i++) await loginAs('admin', 'wrong-password', '198.51.100.12');
    assert.equal((await loginAs('admin', TEST_ADMIN_PASSWORD, '198.51.100.12')).statusCode, 429);
    const restarted = new AuthService(t.ctx.storage, createLogger('silent'), randomBytes(32));
    await assert.rejects(restarted.login('admin', TEST_ADMIN_PASSWORD, '198.51.100.12'), (err: unknown) => err instanceof RateLimitedError);
    const result = await restarted.login('admin', TEST_ADMIN_PASSWORD, '198.51.100.13');
    assert.match(result.token, /^ms_/);
  });
});

describe('loginAddressKey', () => {
  const cases: Record<string, [string, string]> = {
    'IPv4 is kept as is': ['192.0.2.1', '192.0.2.1'],
    'IPv4 mapped into IPv6 is IPv4': ['::ffff:192.0.2.1', '192.0.2.1'],
    'IPv6 counts by its /64': ['2001:db8:0:1:aaaa:bbbb:cccc:dddd', '2001:db8:0:1::/64'],
    'compressed IPv6 expands before cutting': ['2001:db8::1', '2001:db8:0:0::/64'],
    'leading zeros and case do not make a new key': ['2001:0DB8:0000:0001::ff', '2001:db8:0:1::/64'],
    'loopback': ['::1', '0:0:0:0::/64'],
    'a zone id is ignored': ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  };
  for (const [name, [address, key]] of Object.entries(cases)) {
    test(name, () => assert.equal(loginAddressKey(address), key));
  }
});
