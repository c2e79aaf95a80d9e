import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freshSqlite } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

// Issue 13, item 10: a page on another site could post the dashboard's login form with the
// attacker's credentials and sign the victim's browser into the attacker's account (login CSRF).
// The form now refuses a foreign Origin or Sec-Fetch-Site before it checks the password.

const HOST = 'metal.example:8080';
const form = (username: string, password: string) => `username=${encodeURIComponent(username)}&password=${encodeURIComponent(password)}&next=%2Fmachines`;

describe('login CSRF on the dashboard form', () => {
  let t: AuthTestContext;
  before(async () => {
    t = await createAuthTestContext(freshSqlite());
    const admin = await t.login('admin', TEST_ADMIN_PASSWORD);
    const r = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: `Bearer ${admin}` }, payload: { username: 'mallory', role: 'viewer', password: 'mallory-password' } });
    assert.equal(r.statusCode, 201);
  });
  after(() => t.close());

  const postLogin = (headers: Record<string, string>, body = form('mallory', 'mallory-password')) =>
    t.app.inject({ method: 'POST', url: '/login', headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: body, remoteAddress: '192.0.2.50' });
  const sessionsOfMallory = async () => (await t.ctx.storage.events.list({ kind: 'auth.login', actor: 'user:mallory' })).total;

  const refused: Record<string, Record<string, string>> = {
    'a foreign Origin': { origin: 'https://attacker.example' },
    'a foreign Origin with the same host name on another port': { origin: 'http://metal.example:9999' },
    'Origin: null (a sandboxed frame)': { origin: 'null' },
    'Sec-Fetch-Site: cross-site': { 'sec-fetch-site': 'cross-site' },
    'Sec-Fetch-Site: same-site (a sibling subdomain)': { 'sec-fetch-site': 'same-site', origin: 'https://evil.metal.example' },
    'Sec-Fetch-Site: cross-site even with a matching Origin': { 'sec-fetch-site': 'cross-site', origin: `http://${HOST}` },
  };
  for (const [name, headers] of Object.entries(refused)) {
    test(`refused with 403 and no session: ${name}`, async () => {
      const before = await sessionsOfMallory();
      const r = await postLogin(headers);
      assert.equal(r.statusCode, 403, r.body);
      assert.equal(r.headers['set-cookie'], undefined, 'no cookie is set');
      assert.match(r.body, /refused: the form was sent from another site/);
      assert.equal(await sessionsOfMallory(), before, 'nobody signed in');
    });
  }

  test('a foreign post is refused before the password is checked (no failure is counted or recorded)', async () => {
    const failures = async () => (await t.ctx.storage.events.list({ kind: 'auth.login_failed' })).total;
    const before = await failures();
    for (let i = 0; i < 8; i++) assert.equal((await postLogin({ origin: 'https://attacker.example' }, form('admin', 'wrong-password'))).statusCode, 403);
    assert.equal(await failures(), before);
  });

  const accepted: Record<string, Record<string, string>> = {
    'the same Origin': { origin: `http://${HOST}` },
    'Sec-Fetch-Site: same-origin': { 'sec-fetch-site': 'same-origin', origin: `http://${HOST}` },
    'Sec-Fetch-Site: none (typed or bookmarked)': { 'sec-fetch-site': 'none' },
    'neither header (a script or curl)': {},
  };
  for (const [name, headers] of Object.entries(accepted)) {
    test(`signs in: ${name}`, async () => {
      const before = await sessionsOfMallory();
      const r = await postLogin(headers);
      assert.equal(r.statusCode, 303, r.body);
      assert.equal(r.headers.location, '/machines');
      assert.match(String(r.headers['set-cookie']), /^metal_session=ms_/);
      assert.equal(await sessionsOfMallory(), before + 1);
    });
  }
});
