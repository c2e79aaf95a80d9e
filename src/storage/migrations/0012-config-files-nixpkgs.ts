import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.ts';

/**
 * A configuration of several files (JSON text, file name → text; null: the one file in `nixos_config`
 * / `config`), and the nixpkgs each successful build was built from.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('machines').addColumn('nixos_files', 'text').execute();
  await db.schema.alterTable('builds').addColumn('config_files', 'text').execute();
  for (const column of ['nixpkgs_version', 'nixpkgs_revision', 'nixpkgs_source', 'nixpkgs_sha256']) {
    await db.schema.alterTable('builds').addColumn(column, 'text').execute();
  }
}
