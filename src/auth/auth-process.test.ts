import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runMetal, startServerProcess } from '../../test/support/server-process.ts';

describe('authentication in a running `metal serve` and `metal user`', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-auth-proc-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { METAL_DATA_DIR: dataDir, METAL_ENROLL_TOKEN: 'enroll-token-in-the-env-0123' };

  test('the log of a running server never holds the password, a token or a key', async () => {
    const server = await startServerProcess(['serve', '--roles', 'api'], { ...env, METAL_LOG_LEVEL: 'debug' });
    let output = '';
    server.child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const password = readFileSync(join(dataDir, 'initial-admin-password'), 'utf8').trim();
      const login = await fetch(`${server.addresses.api}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }),
      });
      assert.equal(login.status, 200);
      const { token } = (await login.json()) as { token: string };
      const me = await fetch(`${server.addresses.api}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(((await me.json()) as { username: string }).username, 'admin');
      const enroll = await fetch(`${server.addresses.api}/api/v1/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-metal-enroll-token': env.METAL_ENROLL_TOKEN },
        body: JSON.stringify({ service_tag: 'PROC1', mac_address: '52:54:00:00:00:01', hardware: {} }),
      });
      assert.equal(enroll.status, 201);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      const secretKey = readFileSync(join(dataDir, 'secret.key'), 'utf8').trim();
      for (const secret of [password, token, token.slice(3), env.METAL_ENROLL_TOKEN, secretKey]) {
        assert.equal(output.includes(secret), false, `the log holds ${secret.slice(0, 6)}…`);
      }
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  test('metal user add, passwd and rm work on the database directly', async () => {
    const added = await runMetal(['user', 'add', 'alice', '--role', 'operator'], env);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^created alice \(operator\)\npassword: [A-Za-z0-9_-]{24}\n$/);
    const fromStdin = await runMetal(['user', 'add', 'bob', '--role', 'viewer', '--password-stdin'], env, 'bob-password-1\n');
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.doesNotMatch(fromStdin.stdout, /password:/);
    const badRole = await runMetal(['user', 'add', 'eve', '--role', 'root'], env);
    assert.equal(badRole.code, 1);
    assert.match(badRole.stderr, /role must be one of viewer, operator, admin/);
    const passwd = await runMetal(['user', 'passwd', 'bob', '--password-stdin'], env, 'bob-password-2\n');
    assert.equal(passwd.code, 0, passwd.stderr);
    const list = await runMetal(['user', 'ls'], env);
    assert.equal(list.stdout, 'admin\tadmin\nalice\toperator\nbob\tviewer\n');

    const server = await startServerProcess(['serve', '--roles', 'api'], env);
    try {
      const login = (password: string) =>
        fetch(`${server.addresses.api}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bob', password }) });
      assert.equal((await login('bob-password-1')).status, 401);
      const session = await login('bob-password-2');
      assert.equal(session.status, 200);
      // A new password revokes the user's API tokens, unless --keep-tokens.
      const { token: sessionToken } = (await session.json()) as { token: string };
      const minted = await fetch(`${server.addresses.api}/api/v1/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${sessionToken}` },
        body: JSON.stringify({ name: 'ci' }),
      });
      assert.equal(minted.status, 201);
      const { token } = (await minted.json()) as { token: string };
      const works = async () => (await fetch(`${server.addresses.api}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status;
      const kept = await runMetal(['user', 'passwd', 'bob', '--password-stdin', '--keep-tokens'], env, 'bob-password-3\n');
      assert.equal(kept.code, 0, kept.stderr);
      assert.equal(await works(), 200);
      const reset = await runMetal(['user', 'passwd', 'bob', '--password-stdin'], env, 'bob-password-4\n');
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(await works(), 401);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const rm = await runMetal(['user', 'rm', 'bob'], env);
    assert.equal(rm.code, 0, rm.stderr);
    const lastAdmin = await runMetal(['user', 'rm', 'admin'], env);
    assert.equal(lastAdmin.code, 1);
    assert.match(lastAdmin.stderr, /admin is the last admin/);
  });
});
