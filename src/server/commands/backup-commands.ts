import { closeSync, existsSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { configFromFlags, withConfigFlags } from '../../config/config-flags.ts';
import type { Config } from '../../config/config.ts';
import { redactUrl } from '../../config/config.ts';
import { formatBytes, printable } from '../../cli/client/table.ts';
import type { UnopenedSecrets } from '../restore-secrets.ts';

/** Rows by table as one line: `users 3, machines 10000, … (other tables empty)`. */
function describeRows(rows: Record<string, number>): string {
  const held = Object.entries(rows).filter(([, n]) => n > 0);
  const empty = Object.keys(rows).length - held.length;
  const listed = held.map(([table, n]) => `${table} ${n}`).join(', ');
  if (held.length === 0) return 'every table empty';
  return empty > 0 ? `${listed} (other tables empty)` : listed;
}

/** A backup written into a directory: `metal-20261130T011633Z.gz` (UTC; names sort by time). */
const BACKUP_NAME = /^metal-\d{8}T\d{6}Z\.gz$/;

function backupFileName(now: Date): string {
  return `metal-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')}.gz`;
}

/** The backups in a directory beyond the newest `keep` (only names `metal backup` gives them). */
function olderBackups(directory: string, keep: number): string[] {
  const names = readdirSync(directory)
    .filter((name) => BACKUP_NAME.test(name))
    .sort();
  return names.slice(0, Math.max(0, names.length - keep));
}

/** Whether a file starts as gzip data does. */
function isGzipFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(2);
    return readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** `metal backup FILE`: the whole installation's data, read in one transaction while the server runs. */
async function backup(target: string, opts: Record<string, unknown>): Promise<void> {
  const config: Config = configFromFlags(opts);
  const { createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const { PassThrough } = await import('node:stream');
  const { createGzip } = await import('node:zlib');
  const { recordBackup, writeBackup } = await import('../../storage/backup.ts');
  const { existingSecretKey, secretKeyFingerprint } = await import('../../auth/secret-key.ts');
  const { openConfiguredDatabase } = await import('../configured-database.ts');

  const toStdout = target === '-';
  if (toStdout && process.stdout.isTTY) throw new Error('standard output is a terminal: send it to a file or a pipe (metal backup - > metal.gz), or name a file');
  const directory = !toStdout && existsSync(target) && statSync(target).isDirectory();
  const keep = opts.keep === undefined ? undefined : Number(opts.keep);
  if (keep !== undefined && (!directory || !Number.isInteger(keep) || keep < 1)) {
    throw new Error(`--keep ${String(opts.keep)}: give a whole number of backups (1 or more) to keep, with a directory to write into`);
  }
  const file = directory ? join(target, backupFileName(new Date())) : target;
  if (!toStdout && existsSync(file) && !opts.force) throw new Error(`${file} exists; name another file, or pass --force to replace it`);
  const key = existingSecretKey(config);
  if (!key) {
    throw new Error(`no secret key: neither METAL_SECRET_KEY nor ${config.dataDir}/secret.key is set, so this is not the installation's configuration (the key seals its BMC passwords and webhook secrets)`);
  }
  const fingerprint = secretKeyFingerprint(key);
  const database = await openConfiguredDatabase(config, { poolSize: 1 });
  // Written next to its name and renamed once whole, so a file of that name is always a whole backup.
  const partial = `${file}.partial-${process.pid}`;
  try {
    const lines = new PassThrough();
    const gzip = createGzip();
    const sink = toStdout ? process.stdout : createWriteStream(partial, { mode: 0o600, flags: 'wx' });
    const written = pipeline(lines, gzip, sink, { end: !toStdout });
    let summary;
    try {
      summary = await writeBackup(database, lines, fingerprint);
      lines.end();
    } catch (err) {
      lines.destroy(err as Error);
      await written.catch(() => undefined);
      throw err;
    }
    await written;
    if (!toStdout) renameSync(partial, file);
    const size = toStdout ? '' : ` (${formatBytes(statSync(file).size)})`;
    console.error(
      `metal: backup of ${redactUrl(config.databaseUrl)} written to ${toStdout ? 'standard output' : file}${size}: ${describeRows(summary.rows)}\n` +
        `metal: its secrets need the secret key ${fingerprint} (METAL_SECRET_KEY, or secret.key in METAL_DATA_DIR): keep a copy of the key apart from the backup`,
    );
    try {
      await recordBackup(database, summary);
    } catch (err) {
      console.error(`metal: the backup is whole, but it could not be recorded in the database (${err instanceof Error ? err.message : String(err)}): metal_last_backup_timestamp_seconds will not show it`);
    }
    if (directory && keep !== undefined) {
      for (const old of olderBackups(target, keep)) {
        rmSync(join(target, old));
        console.error(`metal: removed the older backup ${join(target, old)} (--keep ${keep})`);
      }
    }
  } finally {
    if (!toStdout) rmSync(partial, { force: true });
    await database.close();
  }
}

/** `metal restore FILE`: a backup into a database that holds no data yet. */
async function restore(file: string, opts: Record<string, unknown>): Promise<void> {
  const config: Config = configFromFlags(opts);
  const { createReadStream } = await import('node:fs');
  const { recordBackup, restoreBackup } = await import('../../storage/backup.ts');
  const { existingSecretKey, loadSecretKey, secretKeyFingerprint } = await import('../../auth/secret-key.ts');
  const { openConfiguredDatabase } = await import('../configured-database.ts');
  const newKey = opts.newSecretKey === true;

  const fromStdin = file === '-';
  if (fromStdin && process.stdin.isTTY) throw new Error('standard input is a terminal: send the backup in from a file or a pipe (metal restore - < metal.gz), or name the file');
  if (!fromStdin && !existsSync(file)) throw new Error(`${file} does not exist`);
  // With --new-secret-key, this installation's key (generated now if there is none) seals from here on.
  const key = newKey ? loadSecretKey(config) : existingSecretKey(config);
  if (!key) {
    throw new Error(
      `no secret key: set METAL_SECRET_KEY, or copy secret.key from the installation the backup was taken from into ${config.dataDir}, before restoring (its BMC passwords and webhook secrets are sealed with it); if that key is lost, restore with --new-secret-key and set those secrets again`,
    );
  }
  const database = await openConfiguredDatabase(config, { poolSize: 1 });
  try {
    const source = fromStdin ? process.stdin : createReadStream(file);
    const summary = await restoreBackup(database, source, secretKeyFingerprint(key), { gunzip: fromStdin || isGzipFile(file), otherKey: newKey });
    console.log(`restored ${fromStdin ? 'standard input' : file} (taken ${summary.header.created_at} from ${summary.header.database}) into ${redactUrl(config.databaseUrl)}: ${describeRows(summary.rows)}`);
    if (newKey) {
      const { settleUnopenedSecrets } = await import('../restore-secrets.ts');
      for (const line of describeUnopened(await settleUnopenedSecrets(database, key))) console.log(line);
    }
    // The restored data is the backup's: that backup is this installation's newest, not the one the
    // restored rows recorded before it was taken.
    try {
      await recordBackup(database, summary);
    } catch (err) {
      console.error(`metal: the rows are restored, but the backup could not be recorded as this installation's last (${err instanceof Error ? err.message : String(err)}): take a new backup`);
    }
  } finally {
    await database.close();
  }
}

/** What `metal restore --new-secret-key` could not open, and the command that sets each again. */
function describeUnopened(u: UnopenedSecrets): string[] {
  const list = (items: string[]) => (items.length <= 20 ? items.join(', ') : `${items.slice(0, 20).join(', ')} and ${items.length - 20} more`);
  if (u.machines.length + u.credentialSets.length + u.webhooks.length === 0) return ['every secret in the backup opens with this secret key: nothing to set again'];
  const lines = ['secrets sealed with the lost key, to set again (they stay in place but do not open; nothing uses them until then):'];
  if (u.machines.length > 0) lines.push(`  BMC passwords of ${u.machines.length} machine(s): ${list(u.machines.map(printable))}  (metal bmc set TAG --password-file …)`);
  if (u.credentialSets.length > 0) lines.push(`  ${u.credentialSets.length} BMC credential set(s): ${list(u.credentialSets.map(printable))}  (metal bmc sets set NAME --password-file …)`);
  if (u.webhooks.length > 0) lines.push(`  ${u.webhooks.length} webhook(s), switched off: ${list(u.webhooks.map((w) => `${w.id} ${printable(w.url)}`))}  (metal webhooks set ID --secret … --enable)`);
  return lines;
}

/** `metal backup` and `metal restore`: the installation's data as one portable file, on either database. */
export function registerBackupCommands(program: Command): void {
  withConfigFlags(
    program
      .command('backup <file>')
      .description('write the whole database to a file (gzip JSON lines, either database), consistent while the server runs; a directory: a new file metal-<UTC time>.gz in it; - for standard output')
      .option('--force', 'replace the file if it exists')
      .option('--keep <n>', 'with a directory: then remove its older backups (metal-*.gz) beyond the newest n')
      .addHelpText(
        'after',
        '\nThe file holds password and token hashes and sealed secrets: it is written readable by its owner only.\n' +
          'Keep the secret key (METAL_SECRET_KEY or secret.key in METAL_DATA_DIR) too, apart from it: a restore needs it.\n' +
          '\nExamples:\n  metal backup /var/backups/metal --keep 14       # what deploy/systemd/metal-backup.timer runs daily\n  metal backup ./metal.gz\n  metal backup - | ssh backup-host "cat > metal.gz"',
      ),
  ).action((file: string, opts: Record<string, unknown>) => backup(file, opts));

  withConfigFlags(
    program
      .command('restore <file>')
      .description('load a backup into a database that holds no data yet (its schema is brought up to date first); - for standard input')
      .option('--new-secret-key', "the backup's secret key is lost: restore with this installation's key (generated if there is none); BMC passwords and webhook secrets are listed to be set again, and those webhooks are switched off")
      .addHelpText(
        'after',
        '\nThe database must be new: a restore never writes over data. The secret key must be the one of the installation\n' +
          'the backup was taken from (METAL_SECRET_KEY, or its secret.key copied into METAL_DATA_DIR), unless --new-secret-key.\n' +
          '\nExamples:\n  metal restore --data-dir /var/lib/metal-new ./metal.gz\n  METAL_DATABASE_URL=postgres://metal@db/metal metal restore ./metal.gz   # a SQLite installation moved to PostgreSQL',
      ),
  ).action((file: string, opts: Record<string, unknown>) => restore(file, opts));
}
