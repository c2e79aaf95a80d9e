import type { Kysely } from 'kysely';

/**
 * Health checks (issue 17): a profile's command line the image runs once it came up, snapshotted on
 * each build, the result a machine sent with its last booted report (JSON), which a rollout reads, and
 * the result that made a rollout's machine healthy or not.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('profiles').addColumn('health_check', 'text').execute();
  await db.schema.alterTable('builds').addColumn('health_check', 'text').execute();
  await db.schema.alterTable('machines').addColumn('booted_health', 'text').execute();
  await db.schema.alterTable('rollout_machines').addColumn('health', 'text').execute();
}
