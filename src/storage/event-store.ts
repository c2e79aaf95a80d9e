import type { Kysely } from 'kysely';
import type { EventFilter, EventStore, EventSummary, NewEvent } from '../core/ports.ts';
import type { Event } from '../core/types.ts';
import { nowIso } from '../core/types.ts';
import { toEvent } from './rows.ts';
import type { Schema } from './schema.ts';

/** The events table: an append-only audit trail. */
export class SqlEventStore implements EventStore {
  constructor(private readonly db: Kysely<Schema>) {}

  /** Appends an event; record it through a transaction's stores to keep it with the change it describes. */
  async record(event: NewEvent): Promise<void> {
    await this.db
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

  async recent(limit: number, machineId?: number): Promise<EventSummary[]> {
    let q = this.db
      .selectFrom('events')
      .leftJoin('machines', 'machines.id', 'events.machine_id')
      .select(['events.id', 'events.kind', 'events.message', 'events.actor_kind', 'events.actor_name', 'events.created_at', 'machines.service_tag']);
    if (machineId !== undefined) q = q.where('events.machine_id', '=', machineId);
    const rows = await q.orderBy('events.id', 'desc').limit(limit).execute();
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
      message: r.message,
      actor: r.actor_kind === 'system' ? 'system' : `${r.actor_kind}:${r.actor_name}`,
      created_at: r.created_at,
      service_tag: r.service_tag ?? null,
    }));
  }
}
