import type { Actor } from './types.ts';

/** The event types a webhook can subscribe to (besides `*` and `<family>.*`). */
export const WEBHOOK_EVENT_TYPES = [
  'machine.enrolled',
  'machine.reenrolled',
  'machine.updated',
  'machine.deleted',
  'machine.booted',
  'machine.rolled_back',
  'machine.rule_applied',
  'machine.rule_failed',
  'machines.bulk',
  'fleet.nixpkgs_changed',
  'profile.created',
  'profile.updated',
  'profile.deleted',
  'rule.created',
  'rule.updated',
  'rule.deleted',
  'build.requested',
  'build.started',
  'build.succeeded',
  'build.failed',
  'build.cancelled',
  'build.released',
  'build.retried',
  'build.image_swept',
  'rollout.started',
  'rollout.rolling',
  'rollout.paused',
  'rollout.resumed',
  'rollout.succeeded',
  'rollout.failed',
  'rollout.rolled_back',
  'rollout.cancelled',
  'rollout.machine_updated',
  'rollout.machine_rolled_back',
  'rollout.action_failed',
  'user.created',
  'user.updated',
  'user.deleted',
  'user.password_changed',
  'token.created',
  'token.revoked',
  'auth.login',
  'auth.login_failed',
  'auth.logout',
  'webhook.created',
  'webhook.updated',
  'webhook.deleted',
  'webhook.disabled',
] as const;

const FAMILIES = new Set(WEBHOOK_EVENT_TYPES.map((t) => t.split('.')[0]!));

/** Whether `name` may appear in a webhook's event list: a known type, `*`, or `<family>.*`. */
export function isWebhookEventPattern(name: string): boolean {
  if (name === '*') return true;
  if (name.endsWith('.*')) return FAMILIES.has(name.slice(0, -2));
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(name);
}

/** Whether a webhook subscribed to `patterns` receives events of type `kind`. */
export function subscribesTo(patterns: readonly string[], kind: string): boolean {
  return patterns.some((p) => p === '*' || p === kind || (p.endsWith('.*') && kind.startsWith(p.slice(0, -1))));
}

/** The event as the outbox keeps it for delivery. */
export interface WebhookEventFacts {
  id: number;
  kind: string;
  occurredAt: string;
  actor: Actor;
  message: string;
  data?: Record<string, unknown> | undefined;
  machine?: { id: number; service_tag: string; hostname: string | null } | undefined;
  buildId?: number | null | undefined;
}

/** The JSON body of a delivery: `{id, type, occurred_at, machine?, build?, actor, data}`. */
export function webhookPayload(e: WebhookEventFacts): string {
  return JSON.stringify({
    id: e.id,
    type: e.kind,
    occurred_at: e.occurredAt,
    ...(e.machine ? { machine: e.machine } : {}),
    ...(e.buildId != null ? { build: { id: e.buildId } } : {}),
    actor: { kind: e.actor.kind, name: e.actor.name },
    data: { message: e.message, ...(e.data ?? {}) },
  });
}
