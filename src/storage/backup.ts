import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './database.ts';
import { migrate } from './database.ts';
import { formatBackupRecord, LAST_BACKUP_SETTING } from '../core/backup-record.ts';
import { MIGRATIONS } from './migrations/index.ts';
import { SqlSettingStore } from './setting-store.ts';

/**
 * A backup is the installation's data as text, the same on both databases, so that it restores into
 * either (a SQLite installation moved to PostgreSQL, or back): gzip-compressed JSON lines.
 *
 *     {"format":"metal-backup","version":1,"created_at":…,"database":"sqlite","migrations":[…],"secret_key":"sha256:…"}
 *     {"table":"users","columns":["id","username",…]}
 *     [1,"admin",…]                        one line a row, values in the order of `columns`
 *     {"table":"machines","columns":[…]}
 *     …
 *     {"end":{"users":3,"machines":10000,…}}   rows a table: a file cut short has no end, or counts that differ
 *
 * Every table is read in one transaction (repeatable read on PostgreSQL, one read snapshot on SQLite),
 * so a backup taken while the server runs is a state the database was in.
 */
export const BACKUP_FORMAT = 'metal-backup';
export const BACKUP_VERSION = 1;

/**
 * The tables a backup holds, parents before children (a row's foreign keys point at rows already
 * restored), each with the key its rows are read in order of.
 */
export const BACKUP_TABLES: ReadonlyArray<{ name: string; key: readonly string[]; pageRows?: number }> = [
  { name: 'users', key: ['id'] },
  { name: 'api_tokens', key: ['id'] },
  { name: 'settings', key: ['name'] },
  { name: 'profiles', key: ['id'] },
  { name: 'rules', key: ['id'] },
  { name: 'machines', key: ['id'] },
  // A build's log may be 4 MiB (MAX_LOG_BYTES): a page of 16 holds at most 64 MiB of them.
  { name: 'builds', key: ['id'], pageRows: 16 },
  { name: 'events', key: ['id'] },
  { name: 'bmc_credential_sets', key: ['id'] },
  { name: 'machine_power', key: ['machine_id'] },
  { name: 'dhcp_leases', key: ['address'] },
  { name: 'webhooks', key: ['id'] },
  { name: 'webhook_deliveries', key: ['id'] },
  { name: 'rollouts', key: ['id'] },
  { name: 'rollout_machines', key: ['rollout_id', 'machine_id'] },
];

/**
 * Tables a backup leaves out, and why: what they hold is rebuilt by a running server, or is not worth
 * carrying to another installation.
 */
export const LEFT_OUT_TABLES: Readonly<Record<string, string>> = {
  sessions: 'dashboard sign-ins: everyone signs in again after a restore',
  rate_limits: 'request counts of the last minutes',
  builder_presence: 'which builders are running now: each running builder writes its own row again',
  change_counter: 'the boot change feed’s counter, set again as the rows are restored',
  machine_tombstones: 'deletions already read by the boot processes of the old installation',
};

/** Columns the database sets itself as a row is written (restored rows get new values). */
const SET_BY_DATABASE: Readonly<Record<string, readonly string[]>> = { machines: ['change_version'] };

/** Rows read a query while backing up, unless the table says otherwise. */
const PAGE_ROWS = 200;
/** Bind parameters an insert may use: SQLite allows 32,766 and PostgreSQL 65,535. */
const MAX_PARAMETERS = 30_000;
/** Rows an insert carries at most. */
const MAX_INSERT_ROWS = 500;

/**
 * Records a whole backup as the database's last: after `metal backup`, in the database it was taken from
 * (after its snapshot: the next backup holds it); after `metal restore`, in the database it went into.
 */
export async function recordBackup(database: Database, summary: BackupSummary): Promise<void> {
  const rows = Object.values(summary.rows).reduce((a, b) => a + b, 0);
  await new SqlSettingStore(database.db).put(LAST_BACKUP_SETTING, formatBackupRecord({ at: new Date(summary.header.created_at), rows }), new Date().toISOString());
}

/** Any table, as a backup sees it: names and values known only at run time. */
type AnyTables = Record<string, Record<string, unknown>>;

/** A backup that cannot be written or restored, with the reason for the person running the command. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  created_at: string;
  database: Database['dialect'];
  /** The migrations applied to the database backed up, in order. */
  migrations: string[];
  /** Which secret key sealed the secrets in it (BMC passwords, webhook secrets): `sha256:` and 16 hex digits. */
  secret_key: string;
}

/** What a backup or a restore held: rows by table. */
export interface BackupSummary {
  header: BackupHeader;
  rows: Record<string, number>;
}

/** A database's tables (Kysely's bookkeeping aside) and their columns. */
async function tablesOf(db: Kysely<AnyTables>): Promise<Map<string, string[]>> {
  const tables = await db.introspection.getTables();
  return new Map(tables.map((t) => [t.name, t.columns.map((c) => c.name)]));
}

/** The migrations applied to a database, in order. */
async function appliedMigrations(db: Kysely<AnyTables>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => r.name);
}

/** Fails when the database holds a table the backup does not know about (a new table must be listed). */
function checkTablesKnown(tables: Map<string, string[]>): void {
  const unknown = [...tables.keys()].filter((t) => !BACKUP_TABLES.some((b) => b.name === t) && !(t in LEFT_OUT_TABLES));
  if (unknown.length > 0) throw new BackupError(`the database has tables this version of metal does not back up: ${unknown.join(', ')}`);
}

/**
 * Writes a backup of `database` to `out` (line by line, waiting whenever `out` is full), read in one
 * transaction. `secretKey` is the fingerprint of the key that sealed its secrets. `out` is not ended.
 */
export async function writeBackup(database: Database, out: Writable, secretKey: string, now = new Date()): Promise<BackupSummary> {
  const writeText = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  const write = (value: unknown) => writeText(`${JSON.stringify(value)}\n`);
  const db = database.db as unknown as Kysely<AnyTables>;
  return db.connection().execute(async (conn) => {
    if (database.dialect === 'postgres') await sql`begin isolation level repeatable read read only`.execute(conn);
    else await sql`begin`.execute(conn);
    try {
      const tables = await tablesOf(conn);
      checkTablesKnown(tables);
      const missing = BACKUP_TABLES.filter((t) => !tables.has(t.name)).map((t) => t.name);
      if (missing.length > 0) throw new BackupError(`the database has no table ${missing.join(', ')}: it is not a metal database, or its schema is older than this metal; run \`metal migrate\` first`);
      const header: BackupHeader = {
        format: BACKUP_FORMAT,
        version: BACKUP_VERSION,
        created_at: now.toISOString(),
        database: database.dialect,
        migrations: await appliedMigrations(conn),
        secret_key: secretKey,
      };
      await write(header);
      const counts: Record<string, number> = {};
      for (const { name, key, pageRows = PAGE_ROWS } of BACKUP_TABLES) {
        const columns = tables.get(name)!;
        await write({ table: name, columns });
        counts[name] = 0;
        // Keyset pages (the rows after the last one read, by key): each query reads only its page,
        // where an offset would read every row before it again.
        let after: unknown[] | undefined;
        for (;;) {
          let query = conn.selectFrom(name).select(columns.map((c) => sql.ref(c).as(c)));
          if (after) {
            const last = after;
            query = query.where(({ eb, refTuple, tuple }) =>
              key.length === 1 ? eb(sql.ref(key[0]!), '>', last[0]) : eb(refTuple(key[0]!, key[1]!), '>', tuple(last[0], last[1])),
            );
          }
          const page = (await key.reduce((q, k) => q.orderBy(sql.ref(k)), query).limit(pageRows).execute()) as Array<Record<string, unknown>>;
          // One write a page: the lines of its rows together.
          if (page.length > 0) await writeText(page.map((row) => `${JSON.stringify(columns.map((c) => plainValue(row[c], name, c)))}\n`).join(''));
          counts[name] += page.length;
          if (page.length < pageRows) break;
          const lastRow = page[page.length - 1]!;
          after = key.map((k) => lastRow[k]);
        }
      }
      await write({ end: counts });
      return { header, rows: counts };
    } finally {
      await sql`rollback`.execute(conn).catch(() => undefined);
    }
  });
}

/** A value as the backup writes it: text, a number or null, the same from either database. */
function plainValue(value: unknown, table: string, column: string): string | number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  throw new BackupError(`${table}.${column} holds a value of a kind a backup does not carry (${typeof value})`);
}

/** A line of a backup file being restored, and where it is. */
interface Line {
  text: string;
  number: number;
}

/**
 * Restores a backup into `database`, which must hold no data yet (a new SQLite file, a new PostgreSQL
 * database or schema): checked before anything is written, then the schema the backup was read from
 * is made, every row is written in one transaction, and the migrations since then run over them. A
 * file that is cut short, damaged, made by a newer metal or sealed with another secret key is refused,
 * and the database is left without data.
 */
export async function restoreBackup(
  database: Database,
  source: Readable,
  secretKey: string,
  options: { gunzip?: boolean; /** Restore a backup sealed with another key: its secrets will not open (server/restore-secrets.ts). */ otherKey?: boolean } = {},
): Promise<BackupSummary> {
  const input = options.gunzip ? gunzipped(source) : source;
  // Errors reach the reading below; one a stream raises after the restore has ended (zlib finds the
  // end of a cut file while the refusal is already on its way) is past caring about.
  input.on('error', () => undefined);
  const lines = linesOf(input);
  let number = 0;
  const next = async (): Promise<Line | undefined> => {
    const r = await lines.next();
    if (r.done) return undefined;
    number += 1;
    return { text: r.value, number };
  };
  try {
    const first = await next();
    if (!first) throw new BackupError('the file is empty');
    const header = parseHeader(first);
    if (header.secret_key !== secretKey && !options.otherKey) {
      throw new BackupError(
        `the backup's secrets were sealed with another secret key (${header.secret_key}; this installation's is ${secretKey}): ` +
          'set METAL_SECRET_KEY, or put secret.key in METAL_DATA_DIR, to the key of the installation it was taken from',
      );
    }
    await checkEmpty(database);
    // The rows go into the schema they were read from, then the migrations since run over them, as
    // they would have over the old database: a migration that fills a new column from old ones fills
    // it for restored rows too.
    const db = database.db as unknown as Kysely<AnyTables>;
    const bookkeeping = await db.introspection.getTables({ withInternalKyselyTables: true });
    const applied = bookkeeping.some((t) => t.name === 'kysely_migration') ? await appliedMigrations(db) : [];
    if (applied.length > header.migrations.length || applied.some((name, i) => header.migrations[i] !== name)) {
      throw new BackupError(
        `the database's schema is newer than the backup's (it has migration ${applied.find((name) => !header.migrations.includes(name)) ?? applied.at(-1)}, the backup was taken at ${header.migrations.at(-1)}): ` +
          'restore into a database that was never migrated (metal restore makes the schema itself)',
      );
    }
    await migrate(database, header.migrations.at(-1));
    const rows = await db.transaction().execute(async (trx) => {
      const restored = await restoreTables(trx, next, () => number);
      if (database.dialect === 'postgres') await resetSequences(trx, Object.keys(restored));
      return restored;
    });
    try {
      await migrate(database);
    } catch (err) {
      throw new BackupError(`the rows are restored, but bringing the schema up to date failed (${err instanceof Error ? err.message : String(err)}); run \`metal migrate\``);
    }
    return { header, rows };
  } catch (err) {
    if (err instanceof BackupError || !(err instanceof Error) || !isStreamError(err)) throw err;
    throw new BackupError(`the file cannot be read to its end (${err.message}): it is damaged or cut short`);
  } finally {
    await lines.return(undefined);
    input.destroy();
    source.destroy();
  }
}

/**
 * The gunzipped bytes of `source`, failing as `source` fails. Not `stream.pipeline`: with a zlib stream
 * last, it calls back as soon as the input is written, and zlib's own error about a file cut short
 * then comes with nobody listening.
 */
function gunzipped(source: Readable): Readable {
  const unzip = createGunzip();
  source.on('error', (err) => unzip.destroy(err));
  return source.pipe(unzip);
}

/** A line longer than this is not one a backup writes (a build log is capped far below it). */
const MAX_LINE_CHARS = 256 * 1024 * 1024;

/** The lines of a stream of UTF-8 text; fails when the stream fails (a damaged gzip stream). */
async function* linesOf(input: Readable): AsyncGenerator<string, undefined> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of input) {
    rest += decoder.write(chunk as Buffer);
    let at: number;
    while ((at = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, at);
      rest = rest.slice(at + 1);
    }
    if (rest.length > MAX_LINE_CHARS) throw new BackupError(`a line of more than ${MAX_LINE_CHARS} characters: this is not a metal backup`);
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
  return undefined;
}

/** Errors of reading the file itself (zlib's, or the file system's), as opposed to the database's. */
function isStreamError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && (code.startsWith('Z_') || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'EIO' || code === 'EISDIR');
}

function parseHeader(line: Line): BackupHeader {
  let header: Partial<BackupHeader>;
  try {
    header = JSON.parse(line.text) as Partial<BackupHeader>;
  } catch {
    throw new BackupError('this is not a metal backup (its first line is not JSON; a backup is the gzip file `metal backup` writes)');
  }
  if (header === null || typeof header !== 'object' || header.format !== BACKUP_FORMAT) throw new BackupError('this is not a metal backup (no "format": "metal-backup" on its first line)');
  if (header.version !== BACKUP_VERSION) throw new BackupError(`the backup is of format version ${String(header.version)}; this metal reads version ${BACKUP_VERSION}`);
  if (!Array.isArray(header.migrations) || !header.migrations.every((m) => typeof m === 'string')) throw new BackupError('the backup does not say which migrations its database had');
  if (typeof header.secret_key !== 'string') throw new BackupError('the backup does not say which secret key sealed its secrets');
  const known = MIGRATIONS.map(([name]) => name);
  const unknown = header.migrations.find((m) => !known.includes(m));
  if (unknown !== undefined) throw new BackupError(`the backup was taken by a newer version of metal (its database had migration ${unknown}, unknown here); restore it with that version or a later one`);
  if (header.migrations.length === 0 || header.migrations.some((m, i) => known[i] !== m)) {
    throw new BackupError('the backup\'s migrations are not this metal\'s, in order, from the first: the file is damaged');
  }
  return header as BackupHeader;
}

/** Refuses a database that holds data (a restore never writes over an installation). */
async function checkEmpty(database: Database): Promise<void> {
  const db = database.db as unknown as Kysely<AnyTables>;
  const tables = await tablesOf(db);
  const held: string[] = [];
  for (const { name } of BACKUP_TABLES) {
    if (!tables.has(name)) continue;
    const row = await db
      .selectFrom(name)
      .select(sql<number | string>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    const n = Number((row as { n: number | string }).n);
    if (n > 0) held.push(`${name}: ${n} row${n === 1 ? '' : 's'}`);
  }
  if (held.length > 0) {
    const where =
      database.dialect === 'sqlite'
        ? 'give it another METAL_DATA_DIR (or METAL_DATABASE_URL=sqlite:<a new file>)'
        : 'give it a new PostgreSQL database, or a new schema (?schema=<name> on METAL_DATABASE_URL)';
    throw new BackupError(`the database is not empty (${held.join(', ')}); a restore never writes over data: ${where}`);
  }
}

/** Writes every table of the backup, reading its lines to the end; returns rows by table. */
async function restoreTables(trx: Transaction<AnyTables>, next: () => Promise<Line | undefined>, number: () => number): Promise<Record<string, number>> {
  const tables = await tablesOf(trx);
  const counts: Record<string, number> = {};
  let table: { name: string; columns: string[]; kept: number[] } | undefined;
  let batch: unknown[][] = [];
  let batchLimit = MAX_INSERT_ROWS;
  const flush = async () => {
    if (!table || batch.length === 0) return;
    const { name, columns, kept } = table;
    const values = batch.map((row) => Object.fromEntries(kept.map((i) => [columns[i]!, row[i]])));
    try {
      await trx.insertInto(name).values(values).execute();
    } catch (err) {
      throw new BackupError(`the database refused rows of ${name} before line ${number()} (${err instanceof Error ? err.message : String(err)}): the backup is damaged; nothing was restored`);
    }
    batch = [];
  };
  let order = -1;
  for (;;) {
    const line = await next();
    if (!line) throw new BackupError('the backup is cut short: it ends before its closing line; it was not written to the end');
    const at = `line ${line.number}`;
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch {
      throw new BackupError(`${at} is not JSON: the file is damaged`);
    }
    if (Array.isArray(value)) {
      if (!table) throw new BackupError(`${at}: a row before any table`);
      if (value.length !== table.columns.length) throw new BackupError(`${at}: a row of ${value.length} values in ${table.name}, which has ${table.columns.length} columns`);
      for (const v of value) {
        if (v !== null && typeof v !== 'string' && typeof v !== 'number') throw new BackupError(`${at}: a value that is not text, a number or null in ${table.name}`);
      }
      batch.push(value);
      counts[table.name]! += 1;
      if (batch.length >= batchLimit) await flush();
      continue;
    }
    if (value === null || typeof value !== 'object') throw new BackupError(`${at} is neither a row nor a table: the file is damaged`);
    await flush();
    const record = value as { table?: unknown; columns?: unknown; end?: unknown };
    if (record.end !== undefined) {
      checkEnd(record.end, counts, at);
      if (await next()) throw new BackupError(`the backup goes on after its closing line (${at}): the file is damaged`);
      return counts;
    }
    const index = BACKUP_TABLES.findIndex((t) => t.name === record.table);
    if (index < 0) throw new BackupError(`${at}: a table this version of metal does not restore (${JSON.stringify(record.table)})`);
    if (index <= order) throw new BackupError(`${at}: table ${String(record.table)} out of order or twice`);
    order = index;
    const name = BACKUP_TABLES[index]!.name;
    if (!Array.isArray(record.columns) || record.columns.length === 0 || !record.columns.every((c) => typeof c === 'string')) {
      throw new BackupError(`${at}: table ${name} without its list of columns`);
    }
    const columns = record.columns as string[];
    const here = tables.get(name) ?? [];
    const missing = columns.filter((c) => !here.includes(c));
    if (missing.length > 0) throw new BackupError(`${at}: table ${name} has columns this database does not (${missing.join(', ')})`);
    if (new Set(columns).size !== columns.length) throw new BackupError(`${at}: table ${name} names a column twice`);
    const skip = SET_BY_DATABASE[name] ?? [];
    const kept = columns.map((c, i) => (skip.includes(c) ? -1 : i)).filter((i) => i >= 0);
    table = { name, columns, kept };
    counts[name] = 0;
    batchLimit = Math.max(1, Math.min(MAX_INSERT_ROWS, Math.floor(MAX_PARAMETERS / kept.length)));
  }
}

function checkEnd(end: unknown, counts: Record<string, number>, at: string): void {
  if (end === null || typeof end !== 'object') throw new BackupError(`${at}: a closing line without row counts`);
  const expected = end as Record<string, unknown>;
  for (const { name } of BACKUP_TABLES) {
    const want = expected[name];
    const got = counts[name];
    if (want === undefined && got === undefined) continue;
    if (want !== got) throw new BackupError(`the backup is damaged: its closing line counts ${String(want)} rows in ${name}, the file holds ${got ?? 0}`);
  }
}

/** PostgreSQL: each restored table's id sequence continues after its highest id. */
async function resetSequences(trx: Transaction<AnyTables>, restored: string[]): Promise<void> {
  for (const { name, key } of BACKUP_TABLES) {
    if (key.length !== 1 || key[0] !== 'id' || !restored.includes(name)) continue;
    await sql`select setval(pg_get_serial_sequence(${name}, 'id'), coalesce((select max(id) from ${sql.table(name)}), 1), (select count(*) > 0 from ${sql.table(name)}))`.execute(trx);
  }
}
