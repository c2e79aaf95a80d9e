import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { migrate, openDatabase } from './database.ts';
import { desiredHashesUpdate } from './machine-store.ts';
import { freshSqlite } from '../../test/support/databases.ts';

const NOW = '2026-01-02T03:04:05.000Z';

// A nixpkgs pin change writes every machine's desired hash, 500 a statement: a statement that read
// every machine made the whole change grow with the square of the fleet (26 s for 100,000 machines).
// SQLite's plan is checked here; PostgreSQL's depends on the table's statistics (EXPLAIN on 100,000
// machines: a nested loop over the batch with an index scan of machines_pkey).
test('a batch of desired hashes finds its machines by key on SQLite', async () => {
  const testDb = freshSqlite();
  const database = await openDatabase(testDb.url);
  try {
    await migrate(database);
    // A whole batch, as a pin change writes it: SQLite's plan depends on the batch's size (with two
    // rows it looks them up by key either way; with 500 it read every machine without `id in`).
    const batch = Array.from({ length: 500 }, (_, i) => ({ id: i + 1, hash: i % 2 === 0 ? 'a' : null }));
    const statement = desiredHashesUpdate(batch, NOW);
    const rows = await sql<{ detail: string }>`explain query plan ${statement}`.execute(database.db);
    const plan = rows.rows.map((r) => r.detail).join('\n');
    assert.match(plan, /SEARCH machines USING INTEGER PRIMARY KEY/, plan);
    assert.doesNotMatch(plan, /SCAN machines/, plan);
  } finally {
    await database.close();
    await testDb.cleanup();
  }
});
