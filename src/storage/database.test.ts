import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from './database.ts';

test('a new SQLite database, its -wal and its -shm are readable by their owner only', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-db-mode-'));
  const previous = process.umask(0o022);
  try {
    const path = join(dir, 'data', 'metal.db');
    const database = await openDatabase(`sqlite:${path}`);
    try {
      await sql`create table t (x integer)`.execute(database.db);
      await sql`insert into t values (1)`.execute(database.db);
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        assert.ok(existsSync(file), file);
        assert.equal((statSync(file).mode & 0o777).toString(8), '600', file);
      }
    } finally {
      await database.close();
    }
  } finally {
    process.umask(previous);
    rmSync(dir, { recursive: true, force: true });
  }
});
