import { sql, type Kysely } from 'kysely';
import type { Logger } from '../core/logger.ts';
import type { BootChanges, BootFeed } from '../core/ports.ts';
import type { Database } from './database.ts';
import { listenWithReconnect } from './pg-listener.ts';
import type { Schema } from './schema.ts';

/** How often SQLite's data_version is read to notice another process's commit. */
const SQLITE_POLL_MS = 250;

/** The columns of `machines` the feed reads besides the id: a change of one is a change of the feed. */
export const BOOT_FEED_MACHINE_COLUMNS = ['service_tag', 'identity_mac', 'system_uuid', 'identity_conflict', 'status', 'image_build_id'] as const;

/**
 * The boot change feed over SQL (migration 0008): rows by `change_version`, tombstones of deleted
 * machines, and a watch that wakes on PostgreSQL NOTIFY or on SQLite's `data_version`. A machine gets
 * a new version only when one of BOOT_FEED_MACHINE_COLUMNS changes (the trigger of migration 0019
 * lists them): reading another column here needs a migration adding it to that trigger, which
 * `boot-feed.test.ts` asks for.
 */
export class SqlBootFeed implements BootFeed {
  constructor(
    private readonly database: Database,
    /** The database URL, for PostgreSQL's dedicated LISTEN connection and its schema. */
    private readonly url: string,
    private readonly logger: Logger,
  ) {}

  private get db(): Kysely<Schema> {
    return this.database.db;
  }

  async changes(since?: number): Promise<BootChanges> {
    let q = this.db
      .selectFrom('machines')
      .leftJoin('builds', 'builds.id', 'machines.image_build_id')
      .select(['machines.id', ...BOOT_FEED_MACHINE_COLUMNS.map((c) => `machines.${c}` as const), 'machines.change_version', 'builds.boot_token', 'builds.image_key']);
    if (since !== undefined) q = q.where('machines.change_version', '>', since);
    const [rows, deleted] = await Promise.all([
      q.execute(),
      since === undefined
        ? Promise.resolve([])
        : this.db.selectFrom('machine_tombstones').select(['machine_id', 'change_version']).where('change_version', '>', since).execute(),
    ]);
    return {
      rows: rows.map((r) => ({
        id: Number(r.id),
        serviceTag: r.service_tag,
        macAddress: r.identity_mac,
        systemUuid: r.system_uuid,
        identityConflict: r.identity_conflict !== null,
        status: r.status,
        imageBuildId: r.image_build_id === null ? null : Number(r.image_build_id),
        bootToken: r.boot_token ?? null,
        imageKey: r.image_key ?? null,
        version: Number(r.change_version),
      })),
      deleted: deleted.map((d) => ({ id: Number(d.machine_id), version: Number(d.change_version) })),
    };
  }

  async watch(onChange: () => void): Promise<() => Promise<void>> {
    return this.database.dialect === 'postgres' ? this.listen(onChange) : this.poll(onChange);
  }

  /** SQLite: `data_version` changes when another connection commits; this process's own writes are signalled in-process. */
  private async poll(onChange: () => void): Promise<() => Promise<void>> {
    const read = async () => Number((await sql<{ data_version: number }>`pragma data_version`.execute(this.db)).rows[0]?.data_version ?? 0);
    let last = await read();
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      read()
        .then((now) => {
          if (now !== last) {
            last = now;
            onChange();
          }
        })
        .catch((err: unknown) => this.logger.warn({ err }, 'storage: could not read the change marker'))
        .finally(() => {
          busy = false;
        });
    }, SQLITE_POLL_MS);
    timer.unref();
    return async () => clearInterval(timer);
  }

  /** PostgreSQL: a dedicated LISTEN connection, replaced when lost (each new one signals a catch-up; the table's own poll covers the gap). */
  private async listen(onChange: () => void): Promise<() => Promise<void>> {
    const schema = new URL(this.url).searchParams.get('schema') ?? 'public';
    const listener = await listenWithReconnect({
      url: this.url,
      channel: 'metal_changes',
      applicationName: `metal change feed ${schema}`,
      onNotification: (payload) => {
        if (payload === schema) onChange();
      },
      onListening: onChange,
      logger: this.logger,
      what: 'the boot change feed',
    });
    return () => listener.stop();
  }
}
