import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql, type MigrationProvider } from 'kysely';
import pg from 'pg';
import type { Dialect } from './migrations/context.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Schema } from './schema.ts';
import { SchemaScopedPostgresDialect } from './postgres-introspection.ts';
import { SqliteSideWriter } from './sqlite-side-writer.ts';

/** An open database: the query builder, which dialect it speaks, and how to close it. */
export interface Database {
  db: Kysely<Schema>;
  dialect: Dialect;
  /**
   * SQLite on a file: writes nobody waits for run here, off the main thread (sqlite-side-writer.ts).
   * Started at first use; closed with the database.
   */
  sideWriter?: SqliteSideWriter;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Connections in the PostgreSQL pool. */
  poolSize?: number;
}

/**
 * Opens `sqlite:<path>` (WAL, busy timeout, foreign keys) or `postgres://…`. A `schema` query
 * parameter on a PostgreSQL URL puts every table in that schema (created when missing).
 */
export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length));
  return openPostgres(url, options);
}

function openSqlite(path: string): Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    // It holds password and token hashes and sealed secrets: a new database is readable by its owner
    // only, and SQLite gives its -wal and -shm files the database file's mode.
    closeSync(openSync(path, 'a', 0o600));
  }
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  // NORMAL in WAL mode survives a killed process; only a power loss can drop the last commits.
  sqlite.pragma('synchronous = NORMAL');
  reusePreparedStatements(sqlite);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
  if (path === ':memory:') return { db, dialect: 'sqlite', close: () => db.destroy() };
  const sideWriter = new SqliteSideWriter(path);
  return {
    db,
    dialect: 'sqlite',
    sideWriter,
    close: async () => {
      await sideWriter.close();
      await db.destroy();
    },
  };
}

/** Statements kept prepared per connection (the SQL texts of a running server number in the dozens). */
const PREPARED_STATEMENTS = 500;

/**
 * Kysely prepares every statement it runs anew; on SQLite preparing is a parse and a plan, 7.7 % of
 * the API's CPU when it lists machines (bench/analysis.md). Statements are kept by their SQL text and
 * reused (least recently used dropped first). better-sqlite3 runs one statement at a time on a
 * connection and nothing here iterates a statement lazily, so a statement is never busy when reused;
 * SQLite re-prepares one by itself when the schema changed.
 */
function reusePreparedStatements(sqlite: SQLite.Database): void {
  const prepare = sqlite.prepare.bind(sqlite);
  const prepared = new Map<string, SQLite.Statement>();
  sqlite.prepare = ((source: string) => {
    let statement = prepared.get(source);
    if (statement) {
      prepared.delete(source);
    } else {
      statement = prepare(source);
      if (prepared.size >= PREPARED_STATEMENTS) prepared.delete(prepared.keys().next().value as string);
    }
    prepared.set(source, statement);
    return statement;
  }) as typeof sqlite.prepare;
}

async function openPostgres(url: string, options: OpenOptions): Promise<Database> {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema');
  parsed.searchParams.delete('schema');
  if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`storage: schema ${JSON.stringify(schema)} in METAL_DATABASE_URL is not a plain lower-case identifier`);
  }
  if (schema) {
    const setup = new pg.Client({ connectionString: parsed.toString() });
    await setup.connect();
    try {
      await setup.query(`create schema if not exists "${schema}"`);
    } finally {
      await setup.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: parsed.toString(),
    max: options.poolSize ?? 10,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  const db = new Kysely<Schema>({ dialect: new SchemaScopedPostgresDialect({ pool }) });
  return { db, dialect: 'postgres', close: () => db.destroy() };
}

/**
 * Brings the schema up to date (or up to the migration named `upTo`, for tests of an older schema);
 * safe to run from several processes at once. Returns names applied.
 */
export async function migrate(database: Database, upTo?: string): Promise<string[]> {
  const ctx = { dialect: database.dialect };
  const last = upTo === undefined ? MIGRATIONS.length : MIGRATIONS.findIndex(([name]) => name === upTo) + 1;
  if (last === 0) throw new Error(`storage: no migration named ${upTo}`);
  const provider: MigrationProvider = {
    async getMigrations() {
      return Object.fromEntries(
        MIGRATIONS.slice(0, last).map(([name, m]) => [name, { up: (db: Kysely<unknown>) => m.up(db, ctx) }]),
      );
    },
  };
  // Kysely looks for its own tables in every schema unless told which: name ours, or a database
  // holding several schemas (one per test, or per installation) would find another schema's tables.
  const migrationTableSchema =
    database.dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(database.db)).rows[0]?.s : undefined;
  const migrator = new Migrator({ db: database.db, provider, ...(migrationTableSchema ? { migrationTableSchema } : {}) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`storage: migration ${failed?.migrationName ?? '(unknown)'} failed: ${reason}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Throws when the database does not answer. */
export async function ping(database: Database): Promise<void> {
  await sql`select 1`.execute(database.db);
}
