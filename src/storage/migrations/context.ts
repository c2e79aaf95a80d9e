import type { Kysely } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

/** What a migration may ask about the database it runs on. */
export interface MigrationContext {
  dialect: Dialect;
}

/** A numbered, forward-only migration. */
export interface Migration {
  up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void>;
}

/** Auto-incrementing integer key: `integer` + AUTOINCREMENT on SQLite, `serial` on PostgreSQL. */
export function idColumnType(ctx: MigrationContext): 'integer' | 'serial' {
  return ctx.dialect === 'sqlite' ? 'integer' : 'serial';
}
