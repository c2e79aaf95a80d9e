import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ROLES } from '../core/types.ts';
import { BuildIdParam, Paging, errorResponses } from '../http/schemas.ts';
import type { AuthService } from './auth-service.ts';
import { principal } from './auth-routes.ts';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)));
const ApiToken = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  role: RoleSchema,
  owner: Type.String({ description: 'username of the creator' }),
  created_at: Time,
  expires_at: Nullable(Time),
  last_used_at: Nullable(Time),
  revoked_at: Nullable(Time),
});
const CreatedToken = Type.Composite([ApiToken, Type.Object({ token: Type.String({ description: 'the `mt_…` secret, shown only in this response' }) })]);
const CreateBody = Type.Object(
  {
    name: Type.String({ maxLength: 64, examples: ['ci'] }),
    role: Type.Optional(RoleSchema),
    expires_at: Type.Optional(Type.Union([Type.String({ maxLength: 64, examples: ['2030-01-01T00:00:00Z'] }), Type.Null()])),
  },
  { additionalProperties: false },
);

/** `/api/v1/tokens…`: named API tokens of the caller (an admin sees and revokes everyone's). */
export function registerTokenRoutes(app: FastifyInstance, auth: AuthService): void {
  const requester = (request: Parameters<typeof principal>[0]) => {
    const p = principal(request);
    return { userId: p.userId, actor: p.actor };
  };

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/api/v1/tokens',
    {
      config: { access: 'viewer' },
      schema: { tags: ['tokens'], summary: 'Create an API token (role at most yours); the token is shown once', body: CreateBody, response: { 201: CreatedToken, ...errorResponses(400, 401, 403) } },
    },
    async (request, reply) => reply.code(201).header('cache-control', 'no-store').send(await auth.tokens.create(requester(request), request.body)),
  );

  app.get<{ Querystring: Static<typeof Paging> }>(
    '/api/v1/tokens',
    {
      config: { access: 'viewer' },
      schema: { tags: ['tokens'], summary: 'Your API tokens (all tokens for an admin); never the secrets', querystring: Paging, response: { 200: Type.Object({ items: Type.Array(ApiToken), total: Type.Integer() }), ...errorResponses(401) } },
    },
    async (request) => auth.tokens.list(requester(request), request.query.limit ?? 50, request.query.offset ?? 0),
  );

  app.delete<{ Params: Static<typeof BuildIdParam> }>(
    '/api/v1/tokens/:id',
    { config: { access: 'viewer' }, schema: { tags: ['tokens'], summary: 'Revoke an API token', params: BuildIdParam, response: { 200: ApiToken, ...errorResponses(401, 404) } } },
    async (request) => auth.tokens.revoke(requester(request), request.params.id),
  );
}
