import type { Kysely } from 'kysely';
import { BuildStore } from './build-store.ts';
import type { Database } from './database.ts';
import { EventStore } from './event-store.ts';
import { MachineStore } from './machine-store.ts';
import type { Schema } from './schema.ts';

/** Every store over one database, plus transactions across them. */
export class Storage {
  readonly machines: MachineStore;
  readonly builds: BuildStore;
  readonly events: EventStore;

  constructor(readonly database: Database) {
    this.machines = new MachineStore(database.db);
    this.builds = new BuildStore(database.db);
    this.events = new EventStore(database.db);
  }

  get db(): Kysely<Schema> {
    return this.database.db;
  }

  get dialect() {
    return this.database.dialect;
  }

  /** Runs `fn` in one transaction; pass the given handle to each store call inside it. */
  transaction<T>(fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    return this.database.db.transaction().execute(fn);
  }
}

/** True when `err` is a unique-constraint violation on either database. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
