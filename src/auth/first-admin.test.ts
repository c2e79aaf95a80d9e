import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, type ConfigKey } from '../config/config.ts';
import { createContext } from '../server/context.ts';
import { pino } from 'pino';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { INITIAL_PASSWORD_FILE } from './first-admin.ts';

for (const kind of await testDatabaseKinds()) {
  describe(`the first admin on ${kind.name}`, () => {
    let log = '';
    async function start(dataDir: string, url: string, env: Partial<Record<ConfigKey, string>> = {}) {
      const config = loadConfig({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: url, METAL_LOG_LEVEL: 'info', METAL_BOOT_URL: 'http://10.0.2.100', ...env });
      log = '';
      return createContext(config, pino({ level: 'info' }, { write: (line: string) => void (log += line) }));
    }

    test('without METAL_ADMIN_PASSWORD: a random password in <data dir>/initial-admin-password (0600) that signs in; once only', async () => {
      const db = kind.fresh();
      const dataDir = mkdtempSync(join(tmpdir(), 'metal-first-'));
      try {
        const ctx = await start(dataDir, db.url);
        const file = join(dataDir, INITIAL_PASSWORD_FILE);
        assert.equal(statSync(file).mode & 0o777, 0o600);
        const password = readFileSync(file, 'utf8').trim();
        assert.ok(password.length >= 20);
        assert.ok(log.includes(`its password is in ${file}`), log);
        assert.equal(log.includes(password), false, 'the password itself is never logged');
        const login = await ctx.auth.login('admin', password, '127.0.0.1');
        assert.equal(login.principal.actor.role, 'admin');
        const events = await ctx.storage.events.list({ kind: 'user.created' });
        assert.equal(events.items[0]?.actor, 'system');
        await ctx.close();
        rmSync(file);
        const again = await start(dataDir, db.url);
        assert.equal(existsSync(file), false, 'no second admin, no new file');
        assert.equal((await again.auth.users.list()).total, 1);
        await again.close();
      } finally {
        await db.cleanup();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    test('with METAL_ADMIN_PASSWORD: that password, and no file', async () => {
      const db = kind.fresh();
      const dataDir = mkdtempSync(join(tmpdir(), 'metal-first-'));
      try {
        const ctx = await start(dataDir, db.url, { METAL_ADMIN_PASSWORD: 'from-the-environment' });
        assert.equal(existsSync(join(dataDir, INITIAL_PASSWORD_FILE)), false);
        assert.equal((await ctx.auth.login('admin', 'from-the-environment', '127.0.0.1')).principal.username, 'admin');
        await ctx.close();
      } finally {
        await db.cleanup();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    test('a too-short METAL_ADMIN_PASSWORD stops start-up naming the key, and creates nobody', async () => {
      const db = kind.fresh();
      const dataDir = mkdtempSync(join(tmpdir(), 'metal-first-'));
      try {
        await assert.rejects(start(dataDir, db.url, { METAL_ADMIN_PASSWORD: 'admin' }), /METAL_ADMIN_PASSWORD="\(hidden\)" is invalid: password must be at least 8 characters/);
        const ctx = await start(dataDir, db.url, { METAL_ADMIN_PASSWORD: 'long-enough-now' });
        assert.equal((await ctx.auth.users.list()).total, 1);
        await ctx.close();
      } finally {
        await db.cleanup();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}
