import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { RuleService } from '../../core/rule-service.ts';
import { errorResponses } from '../../http/schemas.ts';

/** What the rule routes use. */
export interface RuleRouteOptions {
  rules: Pick<RuleService, 'list' | 'get' | 'create' | 'update' | 'remove' | 'preview' | 'apply'>;
}

const Range = Type.Object({ min: Type.Optional(Type.Integer({ minimum: 0 })), max: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false });
const Labels = Type.Record(Type.String(), Type.String());

const Match = Type.Object(
  {
    manufacturer: Type.Optional(Type.String({ maxLength: 128, description: 'glob, e.g. Dell*' })),
    model: Type.Optional(Type.String({ maxLength: 128 })),
    service_tag: Type.Optional(Type.String({ maxLength: 128 })),
    mac: Type.Optional(Type.String({ maxLength: 17, description: 'MAC prefix, e.g. 3c:ec:ef' })),
    cpu_threads: Type.Optional(Range),
    memory_bytes: Type.Optional(Range),
    disk_count: Type.Optional(Range),
    disk_bytes: Type.Optional(Range),
    gpu: Type.Optional(Type.Boolean()),
    switch: Type.Optional(Type.String({ maxLength: 128, description: 'glob on the LLDP name (else chassis id) of a switch a NIC is cabled to, e.g. leaf-r12-*' })),
    switch_port: Type.Optional(Type.String({ maxLength: 128, description: 'glob on that NIC\'s switch port (LLDP port id, else its description), e.g. Ethernet1?' })),
    labels: Type.Optional(Type.String({ maxLength: 1024, description: 'label selector' })),
  },
  { additionalProperties: false },
);
const Set = Type.Object(
  {
    profile: Type.Optional(Type.String({ maxLength: 63 })),
    labels: Type.Optional(Labels),
    hostname_pattern: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);

export const RuleView = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    priority: Type.Integer({ description: 'lower first; then by id' }),
    match: Match,
    set: Set,
    build: Type.Boolean(),
    enabled: Type.Boolean(),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
);

const RuleBody = Type.Object(
  {
    name: Type.String({ maxLength: 63 }),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    match: Type.Optional(Match),
    set: Type.Optional(Set),
    build: Type.Optional(Type.Boolean()),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const PreviewBody = Type.Object({ ...RuleBody.properties, name: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false });
const UpdateBody = Type.Object({ ...RuleBody.properties, name: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false, minProperties: 1 });
const ApplyBody = Type.Object(
  {
    selector: Type.String({ maxLength: 1024, description: 'machines to re-apply rules to; "" selects all' }),
    rule: Type.Optional(Type.String({ maxLength: 63, description: 'only this rule (name or id)' })),
  },
  { additionalProperties: false },
);

const Effect = Type.Object({
  id: Type.Integer(),
  service_tag: Type.String(),
  rule: Type.String(),
  changes: Type.Array(Type.String()),
  hostname: Type.Union([Type.String(), Type.Null()]),
  profile: Type.Union([Type.String(), Type.Null()]),
  labels: Labels,
  build: Type.Boolean(),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});
const Effects = Type.Object({ matched: Type.Integer(), items: Type.Array(Effect) });
const RefParam = Type.Object({ id: Type.String({ maxLength: 63, description: 'rule id or name' }) });
type Ref = { Params: Static<typeof RefParam> };

/** `/api/v1/rules`: the enrollment rules, their preview (a dry run) and explicit re-application. */
export function registerRuleRoutes(app: FastifyInstance, { rules }: RuleRouteOptions): void {
  app.get(
    '/api/v1/rules',
    {
      config: { access: 'viewer' },
      schema: { tags: ['fleet'], summary: 'Rules in the order they are tried', response: { 200: Type.Object({ items: Type.Array(RuleView) }), ...errorResponses(401) } },
    },
    async () => ({ items: await rules.list() }),
  );

  app.post<{ Body: Static<typeof RuleBody> }>(
    '/api/v1/rules',
    {
      config: { access: 'operator' },
      bodyLimit: 64 * 1024,
      schema: { tags: ['fleet'], summary: 'Create a rule', body: RuleBody, response: { 201: RuleView, ...errorResponses(400, 401, 403, 409) } },
    },
    async (request, reply) => reply.code(201).send(await rules.create(request.body, request.actor)),
  );

  app.post<{ Body: Static<typeof PreviewBody> }>(
    '/api/v1/rules/preview',
    {
      // Operators: it writes nothing, but it is a POST and runs the rule in a rolled-back transaction.
      config: { access: 'operator' },
      bodyLimit: 64 * 1024,
      schema: {
        tags: ['fleet'],
        summary: 'Which machines a rule body matches today and what it would set (writes nothing)',
        description: '`matched` counts every machine the rule matches; `items` holds what it would set on the first 10,000 of them, by id.',
        body: PreviewBody,
        response: { 200: Effects, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => rules.preview(request.body),
  );

  app.post<{ Body: Static<typeof ApplyBody> }>(
    '/api/v1/rules/apply',
    {
      config: { access: 'operator' },
      bodyLimit: 4 * 1024,
      schema: {
        tags: ['fleet'],
        summary: 'Re-apply the rules to existing machines picked by a selector (422 when nothing matches, or more than 10,000 machines)',
        body: ApplyBody,
        response: { 200: Effects, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) => rules.apply(request.body, request.actor),
  );

  app.get<Ref>(
    '/api/v1/rules/:id',
    { config: { access: 'viewer' }, schema: { tags: ['fleet'], summary: 'One rule', params: RefParam, response: { 200: RuleView, ...errorResponses(401, 404) } } },
    async (request) => rules.get(request.params.id),
  );

  app.put<Ref & { Body: Static<typeof UpdateBody> }>(
    '/api/v1/rules/:id',
    {
      config: { access: 'operator' },
      bodyLimit: 64 * 1024,
      schema: { tags: ['fleet'], summary: 'Replace a rule’s fields (name kept unless given)', params: RefParam, body: UpdateBody, response: { 200: RuleView, ...errorResponses(400, 401, 403, 404, 409) } },
    },
    async (request) => rules.update(request.params.id, request.body, request.actor),
  );

  app.delete<Ref>(
    '/api/v1/rules/:id',
    { config: { access: 'operator' }, schema: { tags: ['fleet'], summary: 'Delete a rule', params: RefParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404) } } },
    async (request, reply) => {
      await rules.remove(request.params.id, request.actor);
      return reply.code(204).send();
    },
  );
}
