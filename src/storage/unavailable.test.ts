import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { isDatabaseUnavailable } from './unavailable.ts';
import { isPostgresAvailable, TEST_POSTGRES_URL } from '../../test/support/databases.ts';

/** The error `run` raises (it must raise one). */
async function errorOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

/** The error `run` throws at once (it must throw one). */
function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

// Each error comes from the real driver, so a driver upgrade that words them differently fails here.
describe('a database that does not answer, as the drivers say it', () => {
  test('PostgreSQL refusing connections', async () => {
    const err = await errorOf(async () => {
      const client = new pg.Client({ connectionString: 'postgres://metal@127.0.0.1:1/metal', connectionTimeoutMillis: 5000 });
      await client.connect();
    });
    assert.equal(isDatabaseUnavailable(err), true, String(err));
  });

  test('SQLite locked by another writer past the busy timeout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-busy-'));
    const path = join(dir, 'busy.db');
    const holder = new SQLite(path);
    const other = new SQLite(path, { timeout: 0 });
    try {
      holder.exec('create table t (x integer)');
      holder.exec('begin exclusive');
      const err = thrownBy(() => other.exec('insert into t values (1)'));
      assert.equal(isDatabaseUnavailable(err), true, String(err));
      holder.exec('rollback');
      const exists = thrownBy(() => other.exec('create table t (x integer)'));
      assert.equal(isDatabaseUnavailable(exists), false, 'a statement it refuses is not an outage');
    } finally {
      other.close();
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PostgreSQL ending a connection mid-query, and refusing a query', async (t) => {
    if (!(await isPostgresAvailable())) return t.skip('PostgreSQL is not running');
    const victim = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await victim.connect();
    await admin.connect();
    victim.on('error', () => undefined);
    try {
      assert.equal(isDatabaseUnavailable(await errorOf(() => admin.query('selec 1'))), false, 'a syntax error is not an outage');
      const pid = (await victim.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const ended = errorOf(() => victim.query('select pg_sleep(10)'));
      await admin.query('select pg_terminate_backend($1)', [pid]);
      const err = await ended;
      assert.equal(isDatabaseUnavailable(err), true, String(err));
    } finally {
      await admin.end();
      await victim.end().catch(() => undefined);
    }
  });
});
