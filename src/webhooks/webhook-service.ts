import { randomUUID } from 'node:crypto';
import { InvalidInputError, NotFoundError } from '../core/errors.ts';
import type { Storage, Webhook, WebhookDelivery, WebhookPatch } from '../core/ports.ts';
import { nowIso, type Actor } from '../core/types.ts';
import { isWebhookEventPattern } from '../core/webhook-events.ts';
import { refusedUrl } from './url-safety.ts';

/** What a create or an update may carry (an update any subset). */
export interface WebhookInput {
  url?: string;
  events?: string[];
  secret?: string;
  enabled?: boolean;
}

/** Seals secrets at rest (the secret box of METAL_SECRET_KEY); the worker opens them to sign. */
export interface SecretSealer {
  encrypt(plaintext: string, context?: string): string;
  decrypt(sealed: string, context?: string): string;
}

/** The authenticated context of a sealed webhook secret. */
export const WEBHOOK_SECRET_CONTEXT = 'webhooks.secret';

/** Webhook endpoints: validated, with an event for each change; the secret is write-only and sealed at rest. */
export class WebhookService {
  constructor(
    private readonly storage: Pick<Storage, 'webhooks' | 'transaction'>,
    private readonly settings: { allowLoopback: boolean },
    private readonly sealer: SecretSealer,
  ) {}

  list(): Promise<Webhook[]> {
    return this.storage.webhooks.list();
  }

  async get(id: number): Promise<Webhook> {
    const w = await this.storage.webhooks.get(id);
    if (!w) throw new NotFoundError(`webhook ${id} not found`);
    return w;
  }

  async create(input: WebhookInput, actor: Actor): Promise<Webhook> {
    if (input.url === undefined) throw new InvalidInputError('url is required', { field: 'url' });
    if (input.events === undefined) throw new InvalidInputError('events is required: a list of event types, or ["*"]', { field: 'events' });
    if (input.secret === undefined) throw new InvalidInputError('secret is required (16 to 256 characters): deliveries are signed with it', { field: 'secret' });
    const clean = this.validate(input);
    return this.storage.transaction(async (tx) => {
      const secret = this.sealer.encrypt(clean.secret!, WEBHOOK_SECRET_CONTEXT);
      const w = await tx.webhooks.create({ url: clean.url!, events: clean.events!, secret, enabled: clean.enabled ?? true }, nowIso());
      await tx.events.record({ kind: 'webhook.created', actor, message: `webhook ${w.id} created for ${w.url}`, data: { webhook_id: w.id, events: w.events } });
      return w;
    });
  }

  async update(id: number, input: WebhookInput, actor: Actor): Promise<Webhook> {
    const clean = this.validate(input);
    return this.storage.transaction(async (tx) => {
      if (!(await tx.webhooks.get(id))) throw new NotFoundError(`webhook ${id} not found`);
      const patch: WebhookPatch = { ...clean, ...(clean.secret !== undefined ? { secret: this.sealer.encrypt(clean.secret, WEBHOOK_SECRET_CONTEXT) } : {}) };
      // Turning an endpoint back on starts its failure clock afresh.
      if (clean.enabled === true) Object.assign(patch, { failing_since: null, disabled_reason: null });
      const w = (await tx.webhooks.update(id, patch, nowIso()))!;
      const changed = Object.keys(clean).map((k) => (k === 'secret' ? 'secret (new)' : k));
      await tx.events.record({ kind: 'webhook.updated', actor, message: `webhook ${id} updated: ${changed.join(', ') || 'nothing'}`, data: { webhook_id: id, changed } });
      return w;
    });
  }

  async delete(id: number, actor: Actor): Promise<void> {
    await this.storage.transaction(async (tx) => {
      const w = await tx.webhooks.get(id);
      if (!w) throw new NotFoundError(`webhook ${id} not found`);
      await tx.webhooks.delete(id);
      await tx.events.record({ kind: 'webhook.deleted', actor, message: `webhook ${id} for ${w.url} deleted`, data: { webhook_id: id } });
    });
  }

  async deliveries(id: number, limit: number, offset: number): Promise<{ items: WebhookDelivery[]; total: number }> {
    await this.get(id);
    return this.storage.webhooks.deliveries(id, limit, offset);
  }

  /** Sends a delivery's payload again, as a new delivery (a new X-Metal-Delivery id). */
  async redeliver(id: number, deliveryId: number): Promise<WebhookDelivery> {
    await this.get(id);
    const again = await this.storage.webhooks.redeliver(id, deliveryId, randomUUID(), nowIso());
    if (!again) throw new NotFoundError(`delivery ${deliveryId} of webhook ${id} not found`);
    return again;
  }

  private validate(input: WebhookInput): WebhookInput {
    const out: WebhookInput = {};
    if (input.url !== undefined) {
      const reason = refusedUrl(input.url, this.settings.allowLoopback);
      if (reason) throw new InvalidInputError(`url ${JSON.stringify(input.url)} is refused: ${reason}`, { field: 'url' });
      out.url = input.url;
    }
    if (input.events !== undefined) {
      if (input.events.length === 0) throw new InvalidInputError('events must list at least one event type, or "*"', { field: 'events' });
      const unknown = input.events.filter((e) => !isWebhookEventPattern(e));
      if (unknown.length > 0) {
        throw new InvalidInputError(`events: unknown event type ${unknown.map((e) => JSON.stringify(e)).join(', ')}; use a recorded type such as machine.enrolled or build.failed, a family such as build.*, or *`, { field: 'events' });
      }
      out.events = [...new Set(input.events)];
    }
    if (input.secret !== undefined) {
      if (input.secret.length < 16 || input.secret.length > 256) throw new InvalidInputError('secret must be 16 to 256 characters', { field: 'secret' });
      out.secret = input.secret;
    }
    if (input.enabled !== undefined) out.enabled = input.enabled;
    return out;
  }
}
