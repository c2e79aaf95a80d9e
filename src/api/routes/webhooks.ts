import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BuildIdParam, Paging, errorResponses } from '../../http/schemas.ts';
import type { WebhookService } from '../../webhooks/webhook-service.ts';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const Webhook = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  failing_since: Nullable(Time),
  disabled_reason: Nullable(Type.String()),
  created_at: Time,
  updated_at: Time,
});
const Delivery = Type.Object({
  id: Type.Integer(),
  webhook_id: Type.Integer(),
  delivery_id: Type.String({ description: 'the X-Metal-Delivery header: receivers skip an id they already processed' }),
  event_id: Type.Integer(),
  event_type: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  next_attempt_at: Nullable(Time),
  last_status_code: Type.Union([Type.Integer(), Type.Null()]),
  last_error: Nullable(Type.String()),
  response_excerpt: Nullable(Type.String()),
  created_at: Time,
  delivered_at: Nullable(Time),
});
const Fields = {
  url: Type.String({ minLength: 1, maxLength: 2048, examples: ['https://hooks.example.com/metal'] }),
  events: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64, examples: [['machine.enrolled', 'build.failed']] }),
  secret: Type.String({ maxLength: 256, description: 'HMAC key of X-Metal-Signature (16 to 256 characters); write-only' }),
  enabled: Type.Boolean(),
};
const CreateBody = Type.Object(
  { url: Fields.url, events: Fields.events, secret: Fields.secret, enabled: Type.Optional(Fields.enabled) },
  { additionalProperties: false },
);
const UpdateBody = Type.Object(
  { url: Type.Optional(Fields.url), events: Type.Optional(Fields.events), secret: Type.Optional(Fields.secret), enabled: Type.Optional(Fields.enabled) },
  { additionalProperties: false },
);
const DeliveryParams = Type.Object({ id: Type.Integer({ minimum: 1 }), delivery: Type.Integer({ minimum: 1 }) });

/** What the webhook routes use. */
export interface WebhookRouteOptions {
  webhooks: Pick<WebhookService, 'list' | 'get' | 'create' | 'update' | 'delete' | 'deliveries' | 'redeliver'>;
}

/** `/api/v1/webhooks…` (admin): endpoints that receive signed events, and their deliveries. */
export function registerWebhookRoutes(app: FastifyInstance, options: WebhookRouteOptions): void {
  const { webhooks } = options;
  const tags = ['webhooks'];

  app.get(
    '/api/v1/webhooks',
    { config: { access: 'admin' }, schema: { tags, summary: 'Webhook endpoints (never their secrets)', response: { 200: Type.Object({ items: Type.Array(Webhook) }), ...errorResponses(401, 403) } } },
    async () => ({ items: await webhooks.list() }),
  );

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/api/v1/webhooks',
    { config: { access: 'admin' }, schema: { tags, summary: 'Add a webhook endpoint', body: CreateBody, response: { 201: Webhook, ...errorResponses(400, 401, 403) } } },
    async (request, reply) => reply.code(201).send(await webhooks.create(request.body, request.actor)),
  );

  app.get<{ Params: Static<typeof BuildIdParam> }>(
    '/api/v1/webhooks/:id',
    { config: { access: 'admin' }, schema: { tags, summary: 'A webhook endpoint', params: BuildIdParam, response: { 200: Webhook, ...errorResponses(401, 403, 404) } } },
    async (request) => webhooks.get(request.params.id),
  );

  app.put<{ Params: Static<typeof BuildIdParam>; Body: Static<typeof UpdateBody> }>(
    '/api/v1/webhooks/:id',
    { config: { access: 'admin' }, schema: { tags, summary: 'Change a webhook endpoint (enabling it again restarts its failure clock)', params: BuildIdParam, body: UpdateBody, response: { 200: Webhook, ...errorResponses(400, 401, 403, 404) } } },
    async (request) => webhooks.update(request.params.id, request.body, request.actor),
  );

  app.delete<{ Params: Static<typeof BuildIdParam> }>(
    '/api/v1/webhooks/:id',
    { config: { access: 'admin' }, schema: { tags, summary: 'Remove a webhook endpoint and its deliveries', params: BuildIdParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404) } } },
    async (request, reply) => {
      await webhooks.delete(request.params.id, request.actor);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: Static<typeof BuildIdParam>; Querystring: Static<typeof Paging> }>(
    '/api/v1/webhooks/:id/deliveries',
    {
      config: { access: 'admin' },
      schema: { tags, summary: 'Deliveries to an endpoint, newest first: attempts, status codes, response excerpts, next try', params: BuildIdParam, querystring: Paging, response: { 200: Type.Object({ items: Type.Array(Delivery), total: Type.Integer() }), ...errorResponses(401, 403, 404) } },
    },
    async (request) => webhooks.deliveries(request.params.id, request.query.limit ?? 50, request.query.offset ?? 0),
  );

  app.post<{ Params: Static<typeof DeliveryParams> }>(
    '/api/v1/webhooks/:id/deliveries/:delivery/redeliver',
    { config: { access: 'admin' }, schema: { tags, summary: 'Send a delivery\'s payload again, as a new delivery', params: DeliveryParams, response: { 202: Delivery, ...errorResponses(401, 403, 404) } } },
    async (request, reply) => reply.code(202).send(await webhooks.redeliver(request.params.id, request.params.delivery)),
  );
}
