import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, InvalidInputError } from '../core/errors.ts';
import { toHttpError } from '../http/error-handler.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { WebhooksPage } from './pages/webhooks-page.tsx';
import { field, pageContext, queryParam, sendHtml } from './render.ts';

type Id = { Params: { id: string } };
type DeliveryIds = { Params: { id: string; delivery: string } };

const NOTICES: Record<string, string> = {
  created: 'Webhook added.',
  removed: 'Webhook removed.',
  enabled: 'Webhook enabled.',
  disabled: 'Webhook disabled.',
  redelivered: 'Delivery queued again.',
};

function numericId(value: string, what: string): number {
  if (!/^[1-9]\d{0,14}$/.test(value)) throw new InvalidInputError(`${what} must be a number`);
  return Number(value);
}

/** /admin/webhooks: webhook endpoints and their deliveries, for admins. */
export function registerWebhookPages(app: FastifyInstance, webhooks: NonNullable<DashboardDeps['webhooks']>): void {
  async function show(request: FastifyRequest, reply: FastifyReply, extra: { error?: string; notice?: string; form?: { url: string; events: string } } = {}) {
    const hooks = await Promise.all(
      (await webhooks.list()).map(async (webhook) => {
        const { items, total } = await webhooks.deliveries(webhook.id, 10, 0);
        return { webhook, deliveries: items, total };
      }),
    );
    return sendHtml(reply, <WebhooksPage hooks={hooks} page={pageContext(request)} {...extra} />);
  }

  async function act(request: FastifyRequest, reply: FastifyReply, action: () => Promise<unknown>, notice: string, form?: { url: string; events: string }) {
    try {
      await action();
      return reply.redirect(`/admin/webhooks?notice=${notice}`, 303);
    } catch (err) {
      if (!(err instanceof DomainError) || err.code === 'unauthorized') throw err;
      void reply.code(toHttpError(err).status);
      return show(request, reply, { error: err.message, ...(form ? { form } : {}) });
    }
  }

  app.get('/admin/webhooks', { config: { access: 'admin' } }, async (request, reply) => {
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    return show(request, reply, notice ? { notice } : {});
  });

  app.post('/admin/webhooks', { config: { access: 'admin' } }, async (request, reply) => {
    const url = field(request.body, 'url').trim();
    const events = field(request.body, 'events');
    const list = events.split(',').map((e) => e.trim()).filter(Boolean);
    return act(request, reply, () => webhooks.create({ url, events: list, secret: field(request.body, 'secret') }, request.actor), 'created', { url, events });
  });

  for (const [path, enabled] of [['enable', true], ['disable', false]] as const) {
    app.post<Id>(`/admin/webhooks/:id/${path}`, { config: { access: 'admin' } }, async (request, reply) =>
      act(request, reply, async () => webhooks.update(numericId(request.params.id, 'webhook id'), { enabled }, request.actor), enabled ? 'enabled' : 'disabled'),
    );
  }

  app.post<Id>('/admin/webhooks/:id/delete', { config: { access: 'admin' } }, async (request, reply) =>
    act(request, reply, async () => webhooks.delete(numericId(request.params.id, 'webhook id'), request.actor), 'removed'),
  );

  app.post<DeliveryIds>('/admin/webhooks/:id/deliveries/:delivery/redeliver', { config: { access: 'admin' } }, async (request, reply) =>
    act(request, reply, async () => webhooks.redeliver(numericId(request.params.id, 'webhook id'), numericId(request.params.delivery, 'delivery id')), 'redelivered'),
  );
}
