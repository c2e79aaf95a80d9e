import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The PostgreSQL server tests use; override with METAL_TEST_POSTGRES_URL. */
export const TEST_POSTGRES_URL = process.env.METAL_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/test';

export interface TestDatabase {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty database URL (a temporary file, or a new schema). */
  url: string;
  /** Drops the schema or removes the file. */
  cleanup(): Promise<void>;
}

let postgresAvailable: Promise<boolean> | undefined;

/** Whether the test PostgreSQL server answers. In CI (`CI=true`) its absence is an error. */
export function isPostgresAvailable(): Promise<boolean> {
  postgresAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.end();
      return true;
    } catch (err) {
      if (process.env.CI === 'true') {
        throw new Error(`PostgreSQL at ${TEST_POSTGRES_URL} is required in CI: ${(err as Error).message}`);
      }
      console.warn(`\n*** SKIPPING PostgreSQL tests: ${TEST_POSTGRES_URL} unreachable (${(err as Error).message}) ***\n`);
      return false;
    }
  })();
  return postgresAvailable;
}

export function freshSqlite(): TestDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'metal-test-'));
  return { name: 'sqlite', url: `sqlite:${join(dir, 'metal.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}

export function freshPostgres(): TestDatabase {
  const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return {
    name: 'postgres',
    url: url.toString(),
    cleanup: async () => {
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`drop schema if exists "${schema}" cascade`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * The databases every storage-touching suite runs against: SQLite always, PostgreSQL when it answers
 * (always in CI). Use as `for (const kind of await testDatabaseKinds()) describe(kind, …)`.
 */
export async function testDatabaseKinds(): Promise<Array<{ name: 'sqlite' | 'postgres'; fresh: () => TestDatabase }>> {
  const kinds: Array<{ name: 'sqlite' | 'postgres'; fresh: () => TestDatabase }> = [{ name: 'sqlite', fresh: freshSqlite }];
  if (await isPostgresAvailable()) kinds.push({ name: 'postgres', fresh: freshPostgres });
  return kinds;
}
