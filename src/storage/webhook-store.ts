import type { Kysely, Selectable } from 'kysely';
import type { DeliveryAttempt, DeliveryStatus, DueDelivery, NewWebhook, Webhook, WebhookDelivery, WebhookPatch, WebhookStore } from '../core/ports.ts';
import type { Schema, WebhookDeliveriesTable, WebhooksTable } from './schema.ts';

/** Webhook endpoints and the outbox of deliveries. */
export class SqlWebhookStore implements WebhookStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async create(w: NewWebhook, now: string): Promise<Webhook> {
    const row = await this.db
      .insertInto('webhooks')
      .values({ url: w.url, events: JSON.stringify(w.events), secret: w.secret, enabled: w.enabled ? 1 : 0, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toWebhook(row);
  }

  async list(): Promise<Webhook[]> {
    return (await this.db.selectFrom('webhooks').selectAll().orderBy('id').execute()).map(toWebhook);
  }

  /** Every endpoint with its sealed signing secret (what `metal restore --new-secret-key` checks opens). */
  async listWithSecrets(): Promise<Array<Pick<Webhook, 'id' | 'url' | 'enabled'> & { secret: string }>> {
    const rows = await this.db.selectFrom('webhooks').select(['id', 'url', 'enabled', 'secret']).orderBy('id').execute();
    return rows.map((row) => ({ id: Number(row.id), url: row.url, enabled: Number(row.enabled) === 1, secret: row.secret }));
  }

  async get(id: number): Promise<Webhook | undefined> {
    const row = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toWebhook(row);
  }

  async update(id: number, patch: WebhookPatch, now: string): Promise<Webhook | undefined> {
    const { events, enabled, ...rest } = patch;
    const row = await this.db
      .updateTable('webhooks')
      .set({
        ...rest,
        ...(events !== undefined ? { events: JSON.stringify(events) } : {}),
        ...(enabled !== undefined ? { enabled: enabled ? 1 : 0 } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row && toWebhook(row);
  }

  async delete(id: number): Promise<boolean> {
    await this.db.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
    const result = await this.db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deliveries(webhookId: number, limit: number, offset: number): Promise<{ items: WebhookDelivery[]; total: number }> {
    const q = this.db.selectFrom('webhook_deliveries').where('webhook_id', '=', webhookId);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toDelivery), total: Number(count.n) };
  }

  async getDelivery(webhookId: number, id: number): Promise<WebhookDelivery | undefined> {
    const row = await this.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).where('id', '=', id).executeTakeFirst();
    return row && toDelivery(row);
  }

  async redeliver(webhookId: number, id: number, deliveryId: string, now: string): Promise<WebhookDelivery | undefined> {
    const old = await this.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).where('id', '=', id).executeTakeFirst();
    if (!old) return undefined;
    const row = await this.db
      .insertInto('webhook_deliveries')
      .values({
        webhook_id: webhookId,
        delivery_id: deliveryId,
        event_id: old.event_id,
        event_type: old.event_type,
        payload: old.payload,
        status: 'pending',
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toDelivery(row);
  }

  async claimDue(owner: string, now: string, leaseUntil: string, limit: number): Promise<DueDelivery[]> {
    // Each enabled endpoint's oldest pending delivery: later ones wait behind it, so order holds.
    const heads = this.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.min('id').as('head')).where('status', '=', 'pending').groupBy('webhook_id');
    const candidates = await this.db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
      .select(['d.id'])
      .where('w.enabled', '=', 1)
      .where('d.id', 'in', heads)
      .where('d.next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('d.lease_until', 'is', null), eb('d.lease_until', '<', now)]))
      .orderBy('d.id')
      .limit(limit)
      .execute();
    const claimed: DueDelivery[] = [];
    for (const { id } of candidates) {
      const result = await this.db
        .updateTable('webhook_deliveries')
        .set({ lease_owner: owner, lease_until: leaseUntil })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) continue;
      const row = await this.db
        .selectFrom('webhook_deliveries as d')
        .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
        .selectAll('d')
        .select(['w.url', 'w.secret'])
        .where('d.id', '=', id)
        .executeTakeFirst();
      if (row) claimed.push({ ...toDelivery(row), payload: row.payload, url: row.url, secret: row.secret });
    }
    return claimed;
  }

  async recordAttempt(id: number, owner: string, a: DeliveryAttempt): Promise<boolean> {
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set({ ...a, lease_owner: null, lease_until: null })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async pruneFinished(before: string): Promise<number> {
    const result = await this.db.deleteFrom('webhook_deliveries').where('status', 'in', ['delivered', 'failed']).where('created_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

function toWebhook(row: Selectable<WebhooksTable>): Webhook {
  return {
    id: Number(row.id),
    url: row.url,
    events: JSON.parse(row.events) as string[],
    enabled: Number(row.enabled) === 1,
    failing_since: row.failing_since,
    disabled_reason: row.disabled_reason,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

function toDelivery(row: Selectable<WebhookDeliveriesTable>): WebhookDelivery {
  return {
    id: Number(row.id),
    webhook_id: Number(row.webhook_id),
    delivery_id: row.delivery_id,
    event_id: Number(row.event_id),
    event_type: row.event_type,
    status: row.status as DeliveryStatus,
    attempts: Number(row.attempts),
    next_attempt_at: row.next_attempt_at,
    last_status_code: row.last_status_code === null ? null : Number(row.last_status_code),
    last_error: row.last_error,
    response_excerpt: row.response_excerpt,
    created_at: row.created_at,
    delivered_at: row.delivered_at,
  };
}
