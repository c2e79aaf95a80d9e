import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { clientFromEnvironment, readSettings, resolveConnection, settingsPath, writeSettings } from './client-settings.ts';

describe('client settings', () => {
  const home = mkdtempSync(join(tmpdir(), 'metal-settings-'));
  after(() => rmSync(home, { recursive: true, force: true }));
  const env = { XDG_CONFIG_HOME: home };

  test('nothing saved is empty settings, and no server is a clear error', () => {
    assert.deepEqual(readSettings(env), {});
    assert.throws(() => clientFromEnvironment(env), /no server: run metal login --url URL/);
  });

  test('saved settings are readable by their owner only', () => {
    const path = writeSettings({ url: 'http://127.0.0.1:8080', token: 'ms_secret', username: 'admin' }, env);
    assert.equal(path, join(home, 'metal', 'config.json'));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, 'metal')).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { url: 'http://127.0.0.1:8080', token: 'ms_secret', username: 'admin' });
    assert.deepEqual(readSettings(env), { url: 'http://127.0.0.1:8080', token: 'ms_secret', username: 'admin' });
  });

  test('METAL_URL and METAL_TOKEN override the saved ones', () => {
    writeSettings({ url: 'http://127.0.0.1:8080', token: 'ms_saved' }, env);
    assert.deepEqual(resolveConnection(env), { url: 'http://127.0.0.1:8080', token: 'ms_saved' });
    assert.deepEqual(resolveConnection({ ...env, METAL_URL: 'http://127.0.0.1:9', METAL_TOKEN: 'mt_env' }), { url: 'http://127.0.0.1:9', token: 'mt_env' });
  });

  test('a broken file is an error naming it, and bad URLs are refused', () => {
    writeFileSync(settingsPath(env), '{not json');
    assert.throws(() => readSettings(env), (err: Error) => err.message.startsWith(`${settingsPath(env)} is not valid settings`));
    const token = { METAL_TOKEN: 'mt_x' };
    assert.throws(() => clientFromEnvironment({ ...env, ...token, METAL_URL: 'ftp://x' }), /only http and https/);
    assert.throws(() => clientFromEnvironment({ ...env, ...token, METAL_URL: 'not a url' }), /invalid server URL "not a url"/);
    assert.throws(() => clientFromEnvironment({ ...env, ...token, METAL_URL: 'http://u:p@127.0.0.1' }), /must not contain credentials/);
  });
});
