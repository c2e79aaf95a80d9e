import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { migrate, openDatabase } from '../database.ts';
import { SqlStorage } from '../storage.ts';
import { testDatabaseKinds } from '../../../test/support/databases.ts';

const NOW = '2026-01-02T03:04:05.000Z';
const UUID_X = '4C4C4544-0042-3510-8052-B3C04F4E3232';

// Databases from before machine identity may hold duplicate MACs and UUIDs: upgrading them must not
// fail, the oldest machine keeps the value, and every other one is flagged for an operator.
for (const kind of await testDatabaseKinds()) {
  describe(`migration 0004-machine-identity on ${kind.name}`, () => {
    test('duplicates from an older database are kept, the older machine owns, the others are flagged; builds get image keys', async () => {
      const testDb = kind.fresh();
      const database = await openDatabase(testDb.url);
      try {
        await migrate(database, '0003-machine-search-text');
        const rows: Array<[string, string, string | null]> = [
          ['OLD1', '52:54:00:AA:BB:01', UUID_X],
          ['OLD2', '52:54:00:aa:bb:01', '4c4c4544-0042-3510-8052-000000000002'],
          ['OLD3', '52:54:00:aa:bb:03', UUID_X.toLowerCase()],
          ['OLD4', '52:54:00:aa:bb:04', '03000200-0400-0500-0006-000700080009'],
          ['OLD5', '52:54:00:aa:bb:05', '03000200-0400-0500-0006-000700080009'],
        ];
        for (const [tag, mac, uuid] of rows) {
          await sql`insert into machines (service_tag, mac_address, status, hardware, system_uuid, enrolled_at, updated_at)
            values (${tag}, ${mac}, 'enrolled', '{}', ${uuid}, ${NOW}, ${NOW})`.execute(database.db);
        }
        const old1Id = (await sql<{ id: number }>`select id from machines where service_tag = 'OLD1'`.execute(database.db)).rows[0]!.id;
        await sql`insert into builds (machine_id, status, config, hostname, service_tag, boot_token, artifact_url, created_at, updated_at)
          values (${old1Id}, 'success', '{}', 'old-1', 'OLD1', 'tok', 'http://10.0.2.100/images/builds/1/', ${NOW}, ${NOW})`.execute(database.db);
        assert.deepEqual(await migrate(database, '0004-machine-identity'), ['0004-machine-identity']);
        const storage = new SqlStorage(database);
        const identity = async (tag: string) => {
          const m = (await storage.machines.findByServiceTag(tag))!;
          return storage.machines.findIdentity(m.id);
        };
        const old1 = await identity('OLD1');
        assert.deepEqual([old1?.identity_mac, old1?.system_uuid, old1?.identity_conflict], ['52:54:00:aa:bb:01', UUID_X.toLowerCase(), null]);
        const old2 = await identity('OLD2');
        assert.equal(old2?.identity_mac, null, 'the younger duplicate gives the MAC up');
        assert.equal(old2?.system_uuid, '4c4c4544-0042-3510-8052-000000000002', 'but keeps its own UUID');
        assert.deepEqual(old2?.identity_conflict?.held_by, ['OLD1']);
        const old3 = await identity('OLD3');
        assert.deepEqual([old3?.identity_mac, old3?.system_uuid, old3?.identity_conflict?.held_by], ['52:54:00:aa:bb:03', null, ['OLD1']]);
        for (const tag of ['OLD4', 'OLD5']) {
          const m = await identity(tag);
          assert.deepEqual([m?.system_uuid, m?.identity_conflict], [null, null], 'a firmware placeholder UUID is nobody’s and no conflict');
        }
        assert.equal((await storage.machines.findBootTarget('mac_address', '52:54:00:aa:bb:01'))?.serviceTag, 'OLD1');
        assert.equal((await storage.machines.findBootTarget('system_uuid', UUID_X.toLowerCase()))?.serviceTag, 'OLD1');
        assert.equal((await storage.machines.findById((await storage.machines.findByServiceTag('OLD2'))!.id))?.identity_conflict?.mac_address, '52:54:00:aa:bb:01');
        const build = (await storage.builds.findRecord(1))!;
        assert.match(build.image_key, /^[A-Za-z0-9_-]{22}$/, 'an existing build gets a random image key');
        assert.equal(build.artifact_url, `http://10.0.2.100/images/builds/${build.image_key}/`, 'and its artifact URL follows');
        assert.equal(await storage.builds.findIdByImageKey(build.image_key), 1);
      } finally {
        await database.close();
        await testDb.cleanup();
      }
    });
  });
}
