import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { seedFleet } from '../fleet.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';

const run = promisify(execFile);
const METAL_BIN = fileURLToPath(new URL('../../bin/metal.js', import.meta.url));
const KEY = 'ab'.repeat(32);
const MB = 1_000_000;

/** Wall seconds of one command run to completion; throws with its output when it fails. */
async function timed(command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = process.hrtime.bigint();
  await run(command, args, { env: { ...process.env, ...env }, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** The parts of a test PostgreSQL URL that pg_dump and pg_restore take as flags. */
function pgFlags(url: string): { connection: string[]; schema: string } {
  const u = new URL(url);
  const schema = u.searchParams.get('schema');
  if (!schema) throw new Error(`backup bench: ${url} names no schema`);
  return { connection: ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username), '-d', u.pathname.slice(1)], schema };
}

/**
 * `metal backup` and `metal restore` of a fleet-sized database, each a process run to completion as an
 * operator runs it (Node's start-up included, measured apart), beside the database's own tools on the
 * same data: `sqlite3 .backup` / `.restore`, and `pg_dump -Fc` / `pg_restore` of the schema.
 */
export async function benchBackup(bench: BenchContext): Promise<ScenarioResult> {
  const n = bench.sizes.machines;
  const result = newScenario('backup', `Backup and restore: ${n.toLocaleString('en')} machines, half with a build`, {
    machines: n,
    builds: Math.floor(n / 2),
    measured: 'wall time of each command run to completion, one at a time, nothing else running',
    reference: 'the database\'s own tools on the same data: sqlite3 .backup / .restore; pg_dump -Fc -n <schema> / pg_restore',
  });
  const startup = await timed(process.execPath, [METAL_BIN, '--version']);
  for (const kind of await bench.databases()) {
    const source = kind.fresh();
    const data = bench.tempDir('backup-data');
    {
      const database = await openDatabase(source.url);
      try {
        await migrate(database);
        await seedFleet(database, { count: n, imagesDir: join(data, 'images') });
      } finally {
        await database.close();
      }
    }
    const env = { METAL_DATABASE_URL: source.url, METAL_DATA_DIR: data, METAL_SECRET_KEY: KEY };
    const file = join(bench.tempDir('backup-file'), 'metal.gz');
    const backupSeconds = await timed(process.execPath, [METAL_BIN, 'backup', file], env);
    const target = kind.fresh();
    const restoreSeconds = await timed(process.execPath, [METAL_BIN, 'restore', file], { ...env, METAL_DATABASE_URL: target.url });

    let reference: { label: string; backup: number; restore: number; bytes: number };
    if (kind.name === 'sqlite') {
      const path = new URL(source.url).pathname;
      const copy = join(bench.tempDir('sqlite-backup'), 'copy.db');
      const back = await timed('sqlite3', [path, `.backup '${copy}'`]);
      const restored = join(bench.tempDir('sqlite-restore'), 'restored.db');
      const into = await timed('sqlite3', [restored, `.restore '${copy}'`]);
      reference = { label: 'sqlite3 .backup / .restore', backup: back, restore: into, bytes: statSync(copy).size };
    } else {
      const { connection, schema } = pgFlags(source.url);
      const dump = join(bench.tempDir('pg-dump'), 'metal.dump');
      const back = await timed('pg_dump', [...connection, '-Fc', '-n', schema, '-f', dump]);
      // pg_restore makes the schema again under its own name: the source goes first (its cleanup drops it again).
      await timed('psql', [...connection, '-q', '-c', `drop schema "${schema}" cascade`]);
      const into = await timed('pg_restore', [...connection, dump]);
      reference = { label: 'pg_dump -Fc / pg_restore', backup: back, restore: into, bytes: statSync(dump).size };
    }
    const rows = n + Math.floor(n / 2);
    result.rows.push({
      label: `metal backup / metal restore (${kind.name})`,
      metrics: {
        'backup s': round(backupSeconds),
        'restore s': round(restoreSeconds),
        'file MB': round(statSync(file).size / MB),
        'rows/s backed up': Math.round(rows / backupSeconds),
        'backup × reference': round(backupSeconds / reference.backup),
        'restore × reference': round(restoreSeconds / reference.restore),
      },
    });
    result.rows.push({
      label: `${reference.label} (${kind.name})`,
      metrics: { 'backup s': round(reference.backup), 'restore s': round(reference.restore), 'file MB': round(reference.bytes / MB) },
    });
  }
  result.rows.push({ label: 'node bin/metal.js --version (start-up alone, in every metal row)', metrics: { 's': round(startup) } });
  return result;
}
