import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { migrate, openDatabase } from '../database.ts';
import { testDatabaseKinds } from '../../../test/support/databases.ts';

const NOW = '2026-01-02T03:04:05.000Z';

// Hostnames become unique in 0013. A database holding one hostname on several machines cannot take
// the index: the migration stops, names them, and leaves the database as it was.
for (const kind of await testDatabaseKinds()) {
  describe(`migration 0013-fleet on ${kind.name}`, () => {
    test('duplicate hostnames stop it with a message naming them; once fixed it applies', async () => {
      const testDb = kind.fresh();
      const database = await openDatabase(testDb.url);
      try {
        await migrate(database, '0012-config-files-nixpkgs');
        const rows: Array<[string, string, string | null]> = [
          ['OLD1', '52:54:00:aa:bb:01', 'web-01'],
          ['OLD2', '52:54:00:aa:bb:02', 'web-01'],
          ['OLD3', '52:54:00:aa:bb:03', 'db-01'],
          ['OLD4', '52:54:00:aa:bb:04', null],
          ['OLD5', '52:54:00:aa:bb:05', null],
        ];
        for (const [tag, mac, hostname] of rows) {
          await sql`insert into machines (service_tag, mac_address, status, hardware, hostname, enrolled_at, updated_at)
            values (${tag}, ${mac}, 'enrolled', '{}', ${hostname}, ${NOW}, ${NOW})`.execute(database.db);
        }
        await assert.rejects(migrate(database, '0013-fleet'), /migration 0013-fleet failed: hostnames must be unique, and these are held by more than one machine: web-01 \(2 machines: OLD1, OLD2\)/);
        // (Not through introspection: on a shared PostgreSQL server it lists other suites' schemas too.)
        await assert.rejects(sql`select count(*) from profiles`.execute(database.db), 'nothing of 0013 was applied');
        await sql`update machines set hostname = 'web-02' where service_tag = 'OLD2'`.execute(database.db);
        assert.deepEqual(await migrate(database, '0013-fleet'), ['0013-fleet']);
        await assert.rejects(sql`update machines set hostname = 'web-01' where service_tag = 'OLD3'`.execute(database.db), 'hostnames are unique now');
        await sql`update machines set hostname = null where service_tag = 'OLD3'`.execute(database.db);
      } finally {
        await database.close();
        await testDb.cleanup();
      }
    });
  });
}
