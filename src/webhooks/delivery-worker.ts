import { RepeatedFailure } from '../core/repeated-failure.ts';
import { hostname } from 'node:os';
import type { DeliveryAttempt, DueDelivery, Storage } from '../core/ports.ts';
import type { Logger } from '../core/logger.ts';
import { nowIso } from '../core/types.ts';
import { signDelivery } from './signature.ts';
import { checkResolvedUrl } from './url-safety.ts';
import { WEBHOOK_SECRET_CONTEXT, type SecretSealer } from './webhook-service.ts';

/** How deliveries are attempted; the defaults suit production. */
export interface DeliverySettings {
  /** METAL_WEBHOOK_ALLOW_LOOPBACK */
  allowLoopback: boolean;
  /** Longest wait for one attempt's answer (default 10 s). */
  attemptTimeoutMs?: number;
  /** First retry delay; each next one is 7 times longer, capped at an hour, with jitter (default 2 s). */
  backoffBaseMs?: number;
  /** A delivery is given up, and an endpoint failing this long disabled, after it (default 24 h). */
  giveUpAfterMs?: number;
  /** How often due deliveries are looked for (default 500 ms). */
  pollMs?: number;
  /** Endpoints delivered to at once by this process (default 8; always one delivery per endpoint). */
  concurrency?: number;
  /** Delivered and given-up deliveries are kept this long, then deleted (default 30 days). */
  keepFinishedMs?: number;
}

/** How an attempt went, for metrics. */
export type AttemptResult = 'delivered' | 'retrying' | 'given_up';

export interface WebhookWorkerDeps {
  storage: Pick<Storage, 'webhooks' | 'events' | 'transaction'>;
  /** Opens the sealed secrets to sign with. */
  sealer: Pick<SecretSealer, 'decrypt'>;
  logger: Logger;
  settings: DeliverySettings;
  metrics?: { webhookAttempt(result: AttemptResult): void };
}

export interface RunningWebhookWorker {
  stop(): Promise<void>;
}

/** Bytes of a response body kept as its excerpt; the rest is not read. */
export const RESPONSE_EXCERPT_BYTES = 2048;
const MAX_BACKOFF_MS = 3600_000;

/** The delay before retry `attempt` (1-based): base·7^(attempt-1), at most an hour, times a jitter in [0.5, 1]. */
export function retryDelayMs(attempt: number, baseMs: number, random = Math.random): number {
  const full = Math.min(MAX_BACKOFF_MS, baseMs * 7 ** Math.max(0, attempt - 1));
  return Math.round(full * (0.5 + 0.5 * random()));
}

/**
 * Delivers the outbox: each endpoint's oldest pending delivery, one at a time per endpoint (leased in
 * the database, so several processes never send two at once to one endpoint), at least once, signed.
 */
export function startWebhookWorker(deps: WebhookWorkerDeps): RunningWebhookWorker {
  const { storage, settings } = deps;
  const logger = deps.logger.child({ part: 'webhooks' });
  const timeoutMs = settings.attemptTimeoutMs ?? 10_000;
  const baseMs = settings.backoffBaseMs ?? 2000;
  const giveUpMs = settings.giveUpAfterMs ?? 86_400_000;
  const pollMs = settings.pollMs ?? 500;
  const concurrency = settings.concurrency ?? 8;
  const owner = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const inFlight = new Set<Promise<void>>();
  // A database outage is logged once, then once a minute, not at every poll.
  const lookFailures = new RepeatedFailure(logger, 'webhooks: could not look for due deliveries; trying again shortly', 'webhooks: due deliveries are looked for again');
  let stopped = false;
  let ticking = false;
  let again = false;

  const tick = async (): Promise<void> => {
    if (stopped) return;
    if (ticking) {
      again = true;
      return;
    }
    ticking = true;
    try {
      do {
        again = false;
        const room = concurrency - inFlight.size;
        if (room <= 0) break;
        const now = Date.now();
        const due = await storage.webhooks.claimDue(owner, new Date(now).toISOString(), new Date(now + timeoutMs + 30_000).toISOString(), room);
        for (const d of due) {
          const run = attempt(d).catch((err: unknown) => logger.warn({ err, deliveryId: d.delivery_id }, 'webhooks: could not record a delivery attempt'));
          inFlight.add(run);
          void run.finally(() => {
            inFlight.delete(run);
            void tick();
          });
        }
      } while (again && !stopped);
      lookFailures.succeeded();
    } catch (err) {
      lookFailures.failed(err);
    } finally {
      ticking = false;
    }
  };

  const attempt = async (d: DueDelivery): Promise<void> => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    let status: number | null = null;
    let excerpt: string | null = null;
    let error: string | null = null;
    const refused = await checkResolvedUrl(d.url, settings.allowLoopback).catch((err: Error) => `cannot resolve the host: ${err.message}`);
    let secret: string | undefined;
    try {
      secret = deps.sealer.decrypt(d.secret, WEBHOOK_SECRET_CONTEXT);
    } catch (err) {
      error = `not sent: the secret cannot be opened (${(err as Error).message}); set it again`;
    }
    if (secret !== undefined && refused) error = `not sent: ${refused}`;
    if (secret !== undefined && error === null) {
      try {
        const response = await fetch(d.url, {
          method: 'POST',
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
          headers: {
            'content-type': 'application/json',
            'user-agent': 'metal-webhooks/1',
            'x-metal-event': d.event_type,
            'x-metal-delivery': d.delivery_id,
            'x-metal-timestamp': timestamp,
            'x-metal-signature': signDelivery(secret, timestamp, d.payload),
          },
          body: d.payload,
        });
        status = response.status;
        excerpt = await readExcerpt(response);
        if (status >= 300 && status < 400) error = `answered ${status} (redirects are not followed)`;
        else if (status >= 300) error = `answered ${status}`;
      } catch (err) {
        const e = err as Error;
        error = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `could not send: ${(e.cause as Error | undefined)?.message ?? e.message}`;
      }
    }
    const now = Date.now();
    const attempts = d.attempts + 1;
    let outcome: DeliveryAttempt;
    let result: AttemptResult;
    if (error === null) {
      outcome = { status: 'delivered', attempts, next_attempt_at: null, last_status_code: status, last_error: null, response_excerpt: excerpt, delivered_at: new Date(now).toISOString() };
      result = 'delivered';
    } else if (now - Date.parse(d.created_at) >= giveUpMs) {
      outcome = { status: 'failed', attempts, next_attempt_at: null, last_status_code: status, last_error: error, response_excerpt: excerpt, delivered_at: null };
      result = 'given_up';
    } else {
      const next = new Date(now + retryDelayMs(attempts, baseMs)).toISOString();
      outcome = { status: 'pending', attempts, next_attempt_at: next, last_status_code: status, last_error: error, response_excerpt: excerpt, delivered_at: null };
      result = 'retrying';
    }
    await storage.webhooks.recordAttempt(d.id, owner, outcome);
    deps.metrics?.webhookAttempt(result);
    if (error === null) {
      logger.debug({ webhookId: d.webhook_id, deliveryId: d.delivery_id, event: d.event_type, status }, 'webhooks: delivered');
      await storage.webhooks.update(d.webhook_id, { failing_since: null }, nowIso());
      return;
    }
    logger.warn({ webhookId: d.webhook_id, deliveryId: d.delivery_id, event: d.event_type, attempt: attempts, error, next: outcome.next_attempt_at }, `webhooks: delivery to webhook ${d.webhook_id} failed: ${error}`);
    await noteFailure(d.webhook_id, now, result === 'given_up');
  };

  /**
   * Starts an endpoint's failure clock; after a whole give-up period of failures (or a delivery given
   * up after failing that long) it is disabled, with an event.
   */
  const noteFailure = async (webhookId: number, now: number, gaveUp: boolean): Promise<void> => {
    await storage.transaction(async (tx) => {
      const w = await tx.webhooks.get(webhookId);
      if (!w || !w.enabled) return;
      const since = w.failing_since ?? new Date(now).toISOString();
      if (!gaveUp && now - Date.parse(since) < giveUpMs) {
        if (w.failing_since === null) await tx.webhooks.update(webhookId, { failing_since: since }, nowIso());
        return;
      }
      const reason = `every delivery since ${since} failed`;
      await tx.webhooks.update(webhookId, { enabled: false, disabled_reason: reason }, nowIso());
      await tx.events.record({ kind: 'webhook.disabled', actor: { kind: 'system', name: 'system' }, message: `webhook ${webhookId} for ${w.url} disabled: ${reason}`, data: { webhook_id: webhookId } });
      logger.warn({ webhookId }, `webhooks: webhook ${webhookId} disabled: ${reason}`);
    });
  };

  const keepMs = settings.keepFinishedMs ?? 30 * 86_400_000;
  const prune = () =>
    void storage.webhooks
      .pruneFinished(new Date(Date.now() - keepMs).toISOString())
      .then((n) => n > 0 && logger.info({ deleted: n }, `webhooks: ${n} finished deliveries older than ${Math.round(keepMs / 86_400_000)} days deleted`))
      .catch((err: unknown) => logger.warn({ err }, 'webhooks: could not delete old deliveries'));
  const timer = setInterval(() => void tick(), pollMs);
  const pruneTimer = setInterval(prune, 3600_000);
  pruneTimer.unref();
  prune();
  void tick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(pruneTimer);
      await Promise.allSettled([...inFlight]);
    },
  };
}

/** The first RESPONSE_EXCERPT_BYTES of a body as text; the rest is never read. */
async function readExcerpt(response: Response): Promise<string | null> {
  if (!response.body) return null;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < RESPONSE_EXCERPT_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const text = Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8');
  return text === '' ? null : text;
}
