import type { Kysely } from 'kysely';
import type { Actor, Event } from '../core/types.ts';
import { nowIso } from '../core/types.ts';
import { toEvent } from './rows.ts';
import type { Schema } from './schema.ts';

/** What is recorded about a change. */
export interface NewEvent {
  /** e.g. `machine.enrolled` */
  kind: string;
  machineId?: number | null;
  buildId?: number | null;
  actor: Actor;
  message: string;
  data?: Record<string, unknown>;
}

export interface EventFilter {
  machineId?: number;
  buildId?: number;
  kind?: string;
  /** `user:alice`, `token:ci`, `machine:ABC123`, `system` */
  actor?: string;
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

/** The events table: an append-only audit trail. */
export class EventStore {
  constructor(private readonly db: Kysely<Schema>) {}

  /** Appends an event; pass a transaction as `db` to record it with the change it describes. */
  async record(event: NewEvent, db: Kysely<Schema> = this.db): Promise<void> {
    await db
      .insertInto('events')
      .values({
        kind: event.kind,
        machine_id: event.machineId ?? null,
        build_id: event.buildId ?? null,
        actor_kind: event.actor.kind,
        actor_name: event.actor.name,
        message: event.message,
        data: event.data ? JSON.stringify(event.data) : null,
        created_at: nowIso(),
      })
      .execute();
  }

  /** Newest first. */
  async list(filter: EventFilter = {}): Promise<{ items: Event[]; total: number }> {
    let q = this.db.selectFrom('events');
    if (filter.machineId !== undefined) q = q.where('machine_id', '=', filter.machineId);
    if (filter.buildId !== undefined) q = q.where('build_id', '=', filter.buildId);
    if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
    if (filter.actor !== undefined) {
      const [kind, ...rest] = filter.actor.split(':');
      q = q.where('actor_kind', '=', kind ?? '');
      if (rest.length > 0) q = q.where('actor_name', '=', rest.join(':'));
    }
    if (filter.since !== undefined) q = q.where('created_at', '>=', filter.since);
    if (filter.until !== undefined) q = q.where('created_at', '<', filter.until);
    const [rows, count] = await Promise.all([
      q
        .selectAll()
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 50)
        .offset(filter.offset ?? 0)
        .execute(),
      q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toEvent), total: Number(count.n) };
  }
}
