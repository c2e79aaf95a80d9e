import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { SecretBox } from '../auth/secret-box.ts';
import { setContext } from '../power/machine-power.ts';
import { migrate, openDatabase, type Database } from '../storage/database.ts';
import { WEBHOOK_SECRET_CONTEXT } from '../webhooks/webhook-service.ts';
import { seedEveryTable, SEEDED_ROWS } from '../../test/support/backup-seed.ts';
import { testDatabaseKinds, type TestDatabase } from '../../test/support/databases.ts';
import { settleUnopenedSecrets, WEBHOOK_SECRET_LOST_REASON } from './restore-secrets.ts';

// After `metal restore --new-secret-key`: every sealed value the new key does not open is found, and the
// webhooks among them are switched off; what the new key does open is left alone.

const opened: Array<{ database: Database; test: TestDatabase }> = [];
after(async () => {
  for (const { database, test } of opened) {
    await database.close();
    await test.cleanup();
  }
});

for (const kind of await testDatabaseKinds()) {
  describe(`secrets a restore with a new key cannot open, on ${kind.name}`, () => {
    test('machines and credential sets are listed, webhooks switched off with a reason; a secret sealed with the new key is not', async () => {
      const fresh = kind.fresh();
      const database = await openDatabase(fresh.url);
      opened.push({ database, test: fresh });
      await migrate(database);
      // Every sealed column holds text no key opens, as after a restore sealed with a lost key.
      await seedEveryTable(database);
      const key = randomBytes(32);
      const box = new SecretBox(key);
      const db = database.db;
      // The seed's text is no event list; a webhook's `events` is always one (the store reads it back).
      await db.updateTable('webhooks').set({ events: '["build.failed"]' }).execute();
      const set1 = await db.selectFrom('bmc_credential_sets').select('name').where('id', '=', 1).executeTakeFirstOrThrow();
      await db.updateTable('bmc_credential_sets').set({ password_sealed: box.encrypt('rack-a password', setContext(set1.name)) }).where('id', '=', 1).execute();
      await db.updateTable('webhooks').set({ secret: box.encrypt('a new secret 0123456789', WEBHOOK_SECRET_CONTEXT), enabled: 1, disabled_reason: null }).where('id', '=', 1).execute();
      await db.updateTable('webhooks').set({ enabled: 1, disabled_reason: null }).where('id', '=', 2).execute();
      await db.updateTable('webhooks').set({ enabled: 0, disabled_reason: 'switched off by hand' }).where('id', '=', 3).execute();

      const unopened = await settleUnopenedSecrets(database, key, new Date('2026-11-30T05:00:00.000Z'));
      const tags = (await db.selectFrom('machines').innerJoin('machine_power', 'machine_power.machine_id', 'machines.id').select('service_tag').orderBy('machines.id').execute()).map((m) => m.service_tag);
      assert.equal(tags.length, SEEDED_ROWS);
      assert.deepEqual(unopened.machines, tags, 'every machine\'s own BMC password');
      assert.deepEqual(unopened.credentialSets.length, SEEDED_ROWS - 1, 'the set sealed with the new key opens');
      assert.ok(!unopened.credentialSets.includes(set1.name));
      assert.deepEqual(unopened.webhooks.map((w) => w.id), [2, 3]);
      const hooks = await db.selectFrom('webhooks').select(['id', 'enabled', 'disabled_reason', 'updated_at']).orderBy('id').execute();
      assert.deepEqual(
        hooks.map((h) => [Number(h.id), Boolean(h.enabled), h.disabled_reason]),
        [
          [1, true, null],
          [2, false, WEBHOOK_SECRET_LOST_REASON],
          [3, false, 'switched off by hand'],
        ],
        'an endpoint already off keeps its own reason',
      );
      assert.equal(hooks[1]!.updated_at, '2026-11-30T05:00:00.000Z');
      assert.deepEqual(await settleUnopenedSecrets(database, key), unopened, 'asked again, the same answer');
    });
  });
}
