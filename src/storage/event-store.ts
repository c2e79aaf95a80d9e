import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { EventFilter, EventStore, EventSummary, NewEvent } from '../core/ports.ts';
import type { Event } from '../core/types.ts';
import { nowIso } from '../core/types.ts';
import { subscribesTo, webhookPayload } from '../core/webhook-events.ts';
import { toEvent } from './rows.ts';
import type { Schema } from './schema.ts';

/** The events table: an append-only audit trail. */
export class SqlEventStore implements EventStore {
  constructor(private readonly db: Kysely<Schema>) {}

  /**
   * Appends an event, and a pending delivery for every enabled webhook subscribed to its type, in
   * one transaction (the caller's when the store is bound to one): the outbox never misses an event
   * that was recorded, nor holds one that was rolled back.
   */
  async record(event: NewEvent): Promise<void> {
    if (this.db.isTransaction) return this.write(this.db, event);
    await this.db.transaction().execute((trx) => this.write(trx, event));
  }

  private async write(db: Kysely<Schema>, event: NewEvent): Promise<void> {
    const now = nowIso();
    const row = await db
      .insertInto('events')
      .values({
        kind: event.kind,
        machine_id: event.machineId ?? null,
        build_id: event.buildId ?? null,
        actor_kind: event.actor.kind,
        actor_name: event.actor.name,
        message: event.message,
        data: event.data ? JSON.stringify(event.data) : null,
        created_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const hooks = (await db.selectFrom('webhooks').select(['id', 'events']).where('enabled', '=', 1).execute()).filter((h) =>
      subscribesTo(JSON.parse(h.events) as string[], event.kind),
    );
    if (hooks.length === 0) return;
    const machine =
      event.machineId != null
        ? await db.selectFrom('machines').select(['id', 'service_tag', 'hostname']).where('id', '=', event.machineId).executeTakeFirst()
        : undefined;
    const payload = webhookPayload({
      id: Number(row.id),
      kind: event.kind,
      occurredAt: now,
      actor: event.actor,
      message: event.message,
      data: event.data,
      machine: machine && { id: Number(machine.id), service_tag: machine.service_tag, hostname: machine.hostname },
      buildId: event.buildId,
    });
    await db
      .insertInto('webhook_deliveries')
      .values(
        hooks.map((h) => ({
          webhook_id: Number(h.id),
          delivery_id: randomUUID(),
          event_id: Number(row.id),
          event_type: event.kind,
          payload,
          status: 'pending',
          attempts: 0,
          next_attempt_at: now,
          created_at: now,
        })),
      )
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
