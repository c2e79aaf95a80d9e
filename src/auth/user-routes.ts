import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ROLES } from '../core/types.ts';
import { Paging, errorResponses } from '../http/schemas.ts';
import type { AuthService } from './auth-service.ts';
import { principal } from './auth-routes.ts';
import { PASSWORD_MAX_LENGTH } from './password-hasher.ts';

const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)));
const User = Type.Object(
  { id: Type.Integer(), username: Type.String(), role: RoleSchema, disabled: Type.Boolean(), created_at: Type.String({ format: 'date-time' }), updated_at: Type.String({ format: 'date-time' }) },
);
const UserList = Type.Object({ items: Type.Array(User), total: Type.Integer() });
const CreateBody = Type.Object(
  { username: Type.String({ maxLength: 64 }), role: RoleSchema, password: Type.String({ maxLength: PASSWORD_MAX_LENGTH }) },
  { additionalProperties: false },
);
const UpdateBody = Type.Object(
  {
    role: Type.Optional(RoleSchema),
    disabled: Type.Optional(Type.Boolean({ description: 'true ends the user’s sessions and revokes their API tokens' })),
    password: Type.Optional(Type.String({ maxLength: PASSWORD_MAX_LENGTH, description: 'ends the user’s sessions and revokes their API tokens unless keep_tokens' })),
    keep_tokens: Type.Optional(Type.Boolean({ description: 'with password: keep the user’s API tokens working' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
const UserParam = Type.Object({ id: Type.String({ maxLength: 64, description: 'numeric id, or the username' }) });
type Ref = { Params: Static<typeof UserParam> };

/** `/api/v1/users…` (admin only): list, read, create, change role / disabled / password, remove. Hashes never leave. */
export function registerUserRoutes(app: FastifyInstance, auth: AuthService): void {
  app.get<{ Querystring: Static<typeof Paging> }>(
    '/api/v1/users',
    { config: { access: 'admin' }, schema: { tags: ['users'], summary: 'List users', querystring: Paging, response: { 200: UserList, ...errorResponses(401, 403) } } },
    async (request) => auth.users.list(request.query.limit ?? 50, request.query.offset ?? 0),
  );

  app.get<Ref>(
    '/api/v1/users/:id',
    { config: { access: 'admin' }, schema: { tags: ['users'], summary: 'One user', params: UserParam, response: { 200: User, ...errorResponses(401, 403, 404) } } },
    async (request) => auth.users.get(request.params.id),
  );

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/api/v1/users',
    { config: { access: 'admin' }, schema: { tags: ['users'], summary: 'Create a user', body: CreateBody, response: { 201: User, ...errorResponses(400, 401, 403, 409) } } },
    async (request, reply) => reply.code(201).send(await auth.users.create(request.body, request.actor)),
  );

  app.put<Ref & { Body: Static<typeof UpdateBody> }>(
    '/api/v1/users/:id',
    {
      config: { access: 'admin' },
      schema: { tags: ['users'], summary: 'Change a user’s role, disabled flag or password', params: UserParam, body: UpdateBody, response: { 200: User, ...errorResponses(400, 401, 403, 404, 409) } },
    },
    async (request) => auth.users.update(request.params.id, request.body, request.actor),
  );

  app.delete<Ref>(
    '/api/v1/users/:id',
    { config: { access: 'admin' }, schema: { tags: ['users'], summary: 'Remove a user, their sessions and tokens', params: UserParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 409) } } },
    async (request, reply) => {
      await auth.users.remove(request.params.id, request.actor, principal(request).userId);
      return reply.code(204).send();
    },
  );
}
