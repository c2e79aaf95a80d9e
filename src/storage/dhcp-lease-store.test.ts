import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { migrate, openDatabase } from './database.ts';
import { DhcpLeaseStore, leaseDb } from './dhcp-lease-store.ts';

const NOW = '2026-01-01T00:00:00.000Z';
const LATER = '2026-01-01T01:00:00.000Z';
const MUCH_LATER = '2026-01-01T02:00:00.000Z';

for (const kind of await testDatabaseKinds()) {
  describe(`DhcpLeaseStore on ${kind.name}`, () => {
    async function withStore(fn: (store: DhcpLeaseStore) => Promise<void>): Promise<void> {
      const fresh = kind.fresh();
      const database = await openDatabase(fresh.url);
      try {
        await migrate(database);
        await fn(new DhcpLeaseStore(leaseDb(database.db)));
      } finally {
        await database.close();
        await fresh.cleanup();
      }
    }

    test('a claim is held until it expires; another MAC cannot take the address meanwhile', () =>
      withStore(async (store) => {
        assert.equal(await store.claim('52:54:00:00:00:01', '10.0.0.100', LATER, NOW), true);
        assert.deepEqual(await store.leaseOf('52:54:00:00:00:01'), { address: '10.0.0.100', mac: '52:54:00:00:00:01', expiresAt: LATER });
        assert.deepEqual([...(await store.heldAddresses(NOW))], ['10.0.0.100']);
        assert.equal(await store.claim('52:54:00:00:00:02', '10.0.0.100', LATER, NOW), false);
        // Once expired, the address is free for another MAC.
        assert.deepEqual([...(await store.heldAddresses(MUCH_LATER))], []);
        assert.equal(await store.claim('52:54:00:00:00:02', '10.0.0.100', MUCH_LATER, LATER), true);
        assert.equal(await store.leaseOf('52:54:00:00:00:01'), undefined);
      }));

    test('a MAC has one lease: claiming another address replaces it; renewing keeps it', () =>
      withStore(async (store) => {
        assert.equal(await store.claim('52:54:00:00:00:01', '10.0.0.100', LATER, NOW), true);
        assert.equal(await store.claim('52:54:00:00:00:01', '10.0.0.101', LATER, NOW), true);
        assert.deepEqual([...(await store.heldAddresses(NOW))], ['10.0.0.101']);
        assert.equal(await store.claim('52:54:00:00:00:01', '10.0.0.101', MUCH_LATER, NOW), true);
        assert.equal((await store.leaseOf('52:54:00:00:00:01'))?.expiresAt, MUCH_LATER);
      }));

    test('a release ends only the lease it names', () =>
      withStore(async (store) => {
        await store.claim('52:54:00:00:00:01', '10.0.0.100', LATER, NOW);
        await store.release('52:54:00:00:00:01', '10.0.0.199');
        assert.ok(await store.leaseOf('52:54:00:00:00:01'));
        await store.release('52:54:00:00:00:01', '10.0.0.100');
        assert.equal(await store.leaseOf('52:54:00:00:00:01'), undefined);
      }));

    test('claims of one address at once: exactly one wins', () =>
      withStore(async (store) => {
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.claim(`52:54:00:00:01:0${i}`, '10.0.0.150', LATER, NOW)));
        assert.equal(results.filter(Boolean).length, 1);
      }));
  });
}
