import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../core/errors.ts';
import { errorResponses } from '../http/schemas.ts';
import type { AuthService, Principal } from './auth-service.ts';
import { requestAuth } from './authenticator.ts';
import { PASSWORD_MAX_LENGTH } from './password-hasher.ts';
import { logOutWithCookie } from './session-cookie.ts';

const LoginBody = Type.Object(
  { username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }) },
  { additionalProperties: false },
);
const LoginResponse = Type.Object({ token: Type.String({ description: 'an `ms_…` session token; send it as `Authorization: Bearer <token>`' }), expires_at: Type.String({ format: 'date-time' }) });
const Me = Type.Object({
  id: Type.Integer({ description: 'the user id (of the token owner, for an API token)' }),
  username: Type.String(),
  role: Type.String(),
  kind: Type.Union([Type.Literal('user'), Type.Literal('token')]),
  token_name: Type.Optional(Type.String()),
});
const PasswordBody = Type.Object(
  {
    current_password: Type.String({ maxLength: PASSWORD_MAX_LENGTH }),
    new_password: Type.String({ maxLength: PASSWORD_MAX_LENGTH }),
    keep_tokens: Type.Optional(Type.Boolean({ description: 'keep your API tokens working (by default they are revoked)' })),
  },
  { additionalProperties: false },
);

/** The principal of an authenticated request; routes with a role requirement always have one. */
export function principal(request: FastifyRequest): Principal {
  const found = requestAuth(request);
  if (!found) throw new UnauthorizedError('authentication required');
  return found.principal;
}

/** `/api/v1/auth/…`: sign in, sign out, who am I, change my password. */
export function registerAuthRoutes(app: FastifyInstance, auth: AuthService): void {
  app.post<{ Body: Static<typeof LoginBody> }>(
    '/api/v1/auth/login',
    {
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        summary: 'Sign in: a session token valid for 12 hours',
        security: [],
        body: LoginBody,
        response: { 200: LoginResponse, ...errorResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const { token, expires_at } = await auth.login(request.body.username, request.body.password, request.ip);
      return reply.header('cache-control', 'no-store').send({ token, expires_at });
    },
  );

  app.post(
    '/api/v1/auth/logout',
    { config: { access: 'viewer' }, schema: { tags: ['auth'], summary: 'End this session (and clear the dashboard cookie)', response: { 204: Type.Null(), ...errorResponses(401) } } },
    async (request, reply) => {
      if (requestAuth(request)?.via === 'cookie') await logOutWithCookie(auth, request, reply);
      else await auth.logout(principal(request));
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/v1/auth/me',
    { config: { access: 'viewer' }, schema: { tags: ['auth'], summary: 'Who the caller is', response: { 200: Me, ...errorResponses(401) } } },
    async (request) => {
      const p = principal(request);
      return {
        id: p.userId,
        username: p.username,
        role: p.actor.role,
        kind: p.kind === 'token' ? 'token' : 'user',
        ...(p.kind === 'token' ? { token_name: p.actor.name.slice(p.username.length + 1) } : {}),
      };
    },
  );

  app.put<{ Body: Static<typeof PasswordBody> }>(
    '/api/v1/auth/password',
    {
      config: { access: 'viewer' },
      schema: { tags: ['auth'], summary: 'Change your own password; your other sessions end and your API tokens are revoked unless keep_tokens', body: PasswordBody, response: { 204: Type.Null(), ...errorResponses(400, 401, 403) } },
    },
    async (request, reply) => {
      const p = principal(request);
      await auth.users.changeOwnPassword(p.userId, request.body.current_password, request.body.new_password, p.actor, {
        ...(p.sessionHash !== undefined ? { sessionHash: p.sessionHash } : {}),
        ...(p.kind === 'token' ? { tokenId: p.credentialId } : {}),
        ...(request.body.keep_tokens !== undefined ? { keepTokens: request.body.keep_tokens } : {}),
      });
      return reply.code(204).send();
    },
  );
}
