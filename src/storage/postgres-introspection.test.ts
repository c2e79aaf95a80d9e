import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { freshPostgres, isPostgresAvailable, TEST_POSTGRES_URL, type TestDatabase } from '../../test/support/databases.ts';
import { migrate, openDatabase, type Database } from './database.ts';

// Introspection and migration of one schema while other schemas on the same server come and go.

describe('PostgreSQL introspection of one schema', { skip: !(await isPostgresAvailable()) && 'PostgreSQL unreachable', timeout: 120_000 }, () => {
  let own: TestDatabase;
  let other: TestDatabase;
  let database: Database;
  before(async () => {
    own = freshPostgres();
    other = freshPostgres();
    database = await openDatabase(own.url);
    await migrate(database);
    const neighbour = await openDatabase(other.url);
    await sql`create table only_in_the_other_schema (id integer)`.execute(neighbour.db);
    await neighbour.close();
  });
  after(async () => {
    await database.close();
    await own.cleanup();
    await other.cleanup();
  });

  test('lists the tables of its own schema only, with their columns, and Kysely’s own tables only when asked', async () => {
    const tables = await database.db.introspection.getTables();
    const names = tables.map((t) => t.name);
    assert.ok(names.includes('machines') && names.includes('builds'), names.join(', '));
    assert.ok(!names.includes('only_in_the_other_schema'), 'another schema’s table');
    assert.ok(!names.some((n) => n.startsWith('kysely_')), 'bookkeeping tables left out by default');
    const machines = tables.find((t) => t.name === 'machines')!;
    const id = machines.columns.find((c) => c.name === 'id')!;
    assert.equal(id.isNullable, false);
    assert.ok(machines.columns.some((c) => c.name === 'service_tag' && !c.isNullable));
    assert.ok(new Set(tables.map((t) => t.schema)).size === 1);
    const withKysely = await database.db.introspection.getTables({ withInternalKyselyTables: true });
    assert.ok(withKysely.some((t) => t.name === 'kysely_migration'));
  });

  test('migrations and introspection go on while other schemas are created and dropped', async () => {
    // Another client drops schemas as fast as it can while this one migrates fresh schemas and
    // introspects: a name looked up after its schema was dropped would fail the query.
    const churn = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await churn.connect();
    let stop = false;
    let dropped = 0;
    const churning = (async () => {
      for (let i = 0; !stop; i++) {
        const name = `t_churn_${process.pid}_${i}`;
        await churn.query(`create schema "${name}"`);
        await churn.query(`create table "${name}".a (id serial primary key, v text)`);
        await churn.query(`drop schema "${name}" cascade`);
        dropped += 1;
      }
    })();
    try {
      for (let round = 0; round < 4; round++) {
        const fresh = freshPostgres();
        const db = await openDatabase(fresh.url);
        try {
          await migrate(db);
          for (let i = 0; i < 10; i++) await db.db.introspection.getTables();
        } finally {
          await db.close();
          await fresh.cleanup();
        }
      }
    } finally {
      stop = true;
      await churning;
      await churn.end();
    }
    assert.ok(dropped > 0, 'schemas were dropped meanwhile');
  });
});
