import type { Config } from '../config/config.ts';
import { redactUrl } from '../config/config.ts';
import { openDatabase, ping, type Database, type OpenOptions } from '../storage/database.ts';

/**
 * Opens the database METAL_DATABASE_URL names and makes sure it answers before anything else runs,
 * so that a wrong URL, a server that is down or a file that cannot be written stops start-up with a
 * message naming the setting (the URL shown without its password), not a bare driver error.
 */
export async function openConfiguredDatabase(config: Pick<Readonly<Config>, 'databaseUrl'>, options: OpenOptions = {}): Promise<Database> {
  let database: Database | undefined;
  try {
    database = await openDatabase(config.databaseUrl, options);
    await ping(database);
    return database;
  } catch (err) {
    await database?.close().catch(() => undefined);
    const reason = err instanceof Error ? err.message : String(err);
    if (reason.includes('METAL_DATABASE_URL')) throw err;
    const sqlite = config.databaseUrl.startsWith('sqlite:');
    const hint = sqlite
      ? 'check that its directory exists or can be made and is writable (without METAL_DATABASE_URL, the database is metal.db in METAL_DATA_DIR)'
      : 'check the URL and that the database server runs and accepts this user';
    throw new Error(`METAL_DATABASE_URL: cannot ${sqlite ? 'open' : 'reach'} ${redactUrl(config.databaseUrl)} (${reason}); ${hint}`, { cause: err });
  }
}
