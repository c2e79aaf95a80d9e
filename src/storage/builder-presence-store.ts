import type { Kysely } from 'kysely';
import type { BuilderPresence, BuilderPresenceStore } from '../core/ports.ts';
import type { BuilderPresenceTable, Schema } from './schema.ts';

export class SqlBuilderPresenceStore implements BuilderPresenceStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async put(p: BuilderPresence): Promise<void> {
    const row: BuilderPresenceTable = {
      name: p.name,
      started_at: p.startedAt,
      last_seen_at: p.lastSeenAt,
      concurrency: p.concurrency,
      running: p.running,
      boot_check: p.bootCheck,
      secure_boot: p.secureBoot,
    };
    const { name: _name, ...changes } = row;
    await this.db
      .insertInto('builder_presence')
      .values(row)
      .onConflict((oc) => oc.column('name').doUpdateSet(changes))
      .execute();
  }

  async remove(name: string): Promise<void> {
    await this.db.deleteFrom('builder_presence').where('name', '=', name).execute();
  }

  async list(): Promise<BuilderPresence[]> {
    const rows = await this.db.selectFrom('builder_presence').selectAll().orderBy('name').execute();
    return rows.map((r) => ({
      name: r.name,
      startedAt: r.started_at,
      lastSeenAt: r.last_seen_at,
      concurrency: Number(r.concurrency),
      running: Number(r.running),
      bootCheck: r.boot_check,
      secureBoot: r.secure_boot,
    }));
  }

  async prune(before: string): Promise<number> {
    const result = await this.db.deleteFrom('builder_presence').where('last_seen_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
