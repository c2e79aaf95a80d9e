import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import Fastify from 'fastify';
import pg from 'pg';
import { installErrorHandling, toHttpError } from './error-handler.ts';
import { isPostgresAvailable, TEST_POSTGRES_URL } from '../../test/support/databases.ts';

/** The error a real driver raises for `run`, to map it as the API would. */
async function errorOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('a database that does not answer is a 503, not a 500', () => {
  test('PostgreSQL refusing connections: 503 unavailable with Retry-After, through the one error handler', async () => {
    const err = await errorOf(async () => {
      const client = new pg.Client({ connectionString: 'postgres://metal@127.0.0.1:1/metal', connectionTimeoutMillis: 5000 });
      await client.connect();
    });
    const app = Fastify();
    installErrorHandling(app);
    app.get('/machines', async () => {
      throw err;
    });
    const r = await app.inject({ method: 'GET', url: '/machines' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.headers['retry-after'], '5');
    assert.deepEqual(r.json(), { error: { code: 'unavailable', message: 'the database does not answer; try again shortly' } });
  });

  test('SQLite locked by another writer past the busy timeout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-busy-'));
    const path = join(dir, 'busy.db');
    const holder = new SQLite(path);
    const other = new SQLite(path, { timeout: 0 });
    try {
      holder.exec('create table t (x integer)');
      holder.exec('begin exclusive');
      const err = (() => {
        try {
          other.exec('insert into t values (1)');
        } catch (e) {
          return e;
        }
        throw new Error('expected SQLITE_BUSY');
      })();
      assert.equal(toHttpError(err).status, 503, String(err));
      holder.exec('rollback');
    } finally {
      other.close();
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a query the database refuses stays a 500, a message of its own not shown', async (t) => {
    if (!(await isPostgresAvailable())) return t.skip('PostgreSQL is not running');
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    try {
      const syntax = await errorOf(() => client.query('selec 1'));
      assert.deepEqual(toHttpError(syntax), { status: 500, body: { error: { code: 'internal', message: 'internal error; see the server log' } } });
    } finally {
      await client.end();
    }
  });

  test('a connection the server ends mid-session is a 503', async (t) => {
    if (!(await isPostgresAvailable())) return t.skip('PostgreSQL is not running');
    const victim = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await victim.connect();
    await admin.connect();
    victim.on('error', () => undefined);
    try {
      const pid = (await victim.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const ended = errorOf(() => victim.query('select pg_sleep(10)'));
      await admin.query('select pg_terminate_backend($1)', [pid]);
      const err = await ended;
      assert.equal(toHttpError(err).status, 503, String(err));
    } finally {
      await admin.end();
      await victim.end().catch(() => undefined);
    }
  });
});
