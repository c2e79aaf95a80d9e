import type { Kysely } from 'kysely';
import type { Storage, Stores } from '../core/ports.ts';
import { SqlBuildStore } from './build-store.ts';
import { SqlCredentialStore } from './credential-store.ts';
import { ping, type Database } from './database.ts';
import { SqlEventStore } from './event-store.ts';
import { SqlMachineStore } from './machine-store.ts';
import { SqlProfileStore } from './profile-store.ts';
import { SqlRuleStore } from './rule-store.ts';
import { SqlBmcCredentialSetStore, SqlPowerStore } from './power-store.ts';
import type { Dialect } from './migrations/context.ts';
import { SqlRateLimitStore, rateLimitDb } from './rate-limit-store.ts';
import type { Schema } from './schema.ts';
import type { SqliteSideWriter } from './sqlite-side-writer.ts';
import { SqlRolloutStore } from './rollout-store.ts';
import { SqlSettingStore } from './setting-store.ts';
import { SqlBuilderPresenceStore } from './builder-presence-store.ts';
import { SqlUserStore } from './user-store.ts';
import { SqlWebhookStore } from './webhook-store.ts';

/** How often a transaction is tried when SQLite reports that another process is writing. */
const BUSY_ATTEMPTS = 20;

/** Every store over one SQL handle (the database, or one transaction on it). */
class SqlStores implements Stores {
  readonly machines: SqlMachineStore;
  readonly builds: SqlBuildStore;
  readonly events: SqlEventStore;
  readonly users: SqlUserStore;
  readonly credentials: SqlCredentialStore;
  readonly webhooks: SqlWebhookStore;
  readonly power: SqlPowerStore;
  readonly bmcCredentialSets: SqlBmcCredentialSetStore;
  readonly profiles: SqlProfileStore;
  readonly rules: SqlRuleStore;
  readonly rateLimits: SqlRateLimitStore;
  readonly rollouts: SqlRolloutStore;
  readonly settings: SqlSettingStore;
  readonly builderPresence: SqlBuilderPresenceStore;

  constructor(db: Kysely<Schema>, dialect: Dialect, inTransaction: boolean, sideWriter?: SqliteSideWriter) {
    this.machines = new SqlMachineStore(db, dialect, inTransaction, sideWriter);
    this.profiles = new SqlProfileStore(db);
    this.rules = new SqlRuleStore(db);
    this.builds = new SqlBuildStore(db, dialect, inTransaction);
    this.events = new SqlEventStore(db);
    this.users = new SqlUserStore(db);
    this.credentials = new SqlCredentialStore(db);
    this.webhooks = new SqlWebhookStore(db);
    this.power = new SqlPowerStore(db);
    this.bmcCredentialSets = new SqlBmcCredentialSetStore(db);
    this.rateLimits = new SqlRateLimitStore(rateLimitDb(db), dialect);
    this.rollouts = new SqlRolloutStore(db);
    this.settings = new SqlSettingStore(db);
    this.builderPresence = new SqlBuilderPresenceStore(db);
  }
}

/** The Storage port over SQLite or PostgreSQL. */
export class SqlStorage extends SqlStores implements Storage {
  readonly notifiesAcrossProcesses: boolean;

  constructor(readonly database: Database) {
    super(database.db, database.dialect, false, database.sideWriter);
    this.notifiesAcrossProcesses = database.dialect === 'postgres';
  }

  get dialect(): Dialect {
    return this.database.dialect;
  }

  async transaction<T>(fn: (tx: Stores) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.database.db.transaction().execute((trx) => fn(new SqlStores(trx, this.database.dialect, true)));
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= BUSY_ATTEMPTS || typeof code !== 'string' || !code.startsWith('SQLITE_BUSY')) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
      }
    }
  }

  ping(): Promise<void> {
    return ping(this.database);
  }

  close(): Promise<void> {
    return this.database.close();
  }
}
