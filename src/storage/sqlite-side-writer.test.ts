import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { SqliteSideWriter } from './sqlite-side-writer.ts';

describe('SqliteSideWriter', { timeout: 30_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-side-writer-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function database(name: string): { path: string; main: SQLite.Database } {
    const path = join(dir, name);
    const main = new SQLite(path);
    main.pragma('journal_mode = WAL');
    main.exec('create table t (id integer primary key, seen text)');
    main.prepare('insert into t (id) values (?), (?), (?)').run(1, 2, 3);
    return { path, main };
  }

  test('runs a statement on its own connection; the main connection reads the result', async () => {
    const { path, main } = database('basic.sqlite');
    const writer = new SqliteSideWriter(path);
    try {
      const changed = await writer.run('update t set seen = ? where id in (select value from json_each(?))', ['now', JSON.stringify([1, 3])]);
      assert.equal(changed, 2);
      assert.deepEqual(main.prepare('select id from t where seen = ? order by id').all('now'), [{ id: 1 }, { id: 3 }]);
    } finally {
      await writer.close();
      main.close();
    }
  });

  test('a failing statement rejects with SQLite’s message and code, and the writer goes on', async () => {
    const { path, main } = database('errors.sqlite');
    const writer = new SqliteSideWriter(path);
    try {
      await assert.rejects(writer.run('update nowhere set x = 1', []), (err: Error & { code?: string }) => /no such table: nowhere/.test(err.message) && err.code === 'SQLITE_ERROR');
      assert.equal(await writer.run('update t set seen = ? where id = ?', ['later', 2]), 1);
    } finally {
      await writer.close();
      main.close();
    }
  });

  test('a write waiting for another connection’s lock leaves this thread free', async () => {
    const { path, main } = database('locked.sqlite');
    const writer = new SqliteSideWriter(path, 10_000);
    try {
      main.exec('begin immediate');
      let written = false;
      const write = writer.run('update t set seen = ? where id = ?', ['late', 1]).then((n) => {
        written = true;
        return n;
      });
      // While the worker waits for the lock, timers on this thread still run.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(written, false, 'the write cannot be done while the lock is held');
      main.exec('commit');
      assert.equal(await write, 1);
      assert.equal((main.prepare('select seen from t where id = 1').get() as { seen: string }).seen, 'late');
    } finally {
      await writer.close();
      main.close();
    }
  });

  test('close waits for pending writes; a write after close is refused', async () => {
    const { path, main } = database('close.sqlite');
    const writer = new SqliteSideWriter(path);
    try {
      const pending = writer.run('update t set seen = ? where id = ?', ['closing', 3]);
      await writer.close();
      assert.equal(await pending, 1);
      await assert.rejects(writer.run('update t set seen = ? where id = ?', ['after', 3]), /side writer is closed/);
    } finally {
      main.close();
    }
  });
});
