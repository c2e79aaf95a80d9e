import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../core/errors.ts';
import { roleAtLeast, type Actor, type Role } from '../core/types.ts';

/** Who may call a route: anyone (`public`), or a signed-in actor with at least this role. */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Every route declares it; a route without it is refused at start-up. */
    access?: Access;
  }
  interface FastifyRequest {
    /** Who is calling; `anonymous` when nobody signed in. */
    actor: Actor;
  }
}

/** Finds who is calling from the request's credentials (bearer token, session cookie). */
export interface Authenticator {
  authenticate(request: FastifyRequest): Promise<Actor | undefined>;
}

/** A route as registered, with the access it declared. */
export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access | undefined;
}

const DECLARED = new WeakMap<FastifyInstance, DeclaredRoute[]>();

/** Every route registered on a server with access control, as the router saw it (for the route-matrix test). */
export function declaredRoutes(app: FastifyInstance): readonly DeclaredRoute[] {
  return DECLARED.get(app) ?? [];
}

export const ANONYMOUS: Actor = Object.freeze({ kind: 'anonymous', name: 'anonymous' });

/**
 * Enforces each route's declared access in one place. Routes that declare none make `ready()` fail,
 * so a new route cannot escape the check.
 */
export function installAccessControl(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('actor', null as unknown as Actor);
  const declared: DeclaredRoute[] = [];
  DECLARED.set(app, declared);
  app.addHook('onRoute', (route) => {
    const access = (route.config as { access?: Access } | undefined)?.access;
    for (const method of [route.method].flat()) declared.push({ method, url: route.url, access });
    if (access === undefined && !route.url.startsWith('/documentation')) {
      throw new Error(`api: route ${route.method} ${route.url} declares no access (config.access)`);
    }
  });
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    request.actor = (await authenticator.authenticate(request)) ?? ANONYMOUS;
    if (access === undefined || access === 'public') return;
    if (request.actor.kind === 'anonymous') throw new UnauthorizedError('authentication required: send Authorization: Bearer <token> (POST /api/v1/auth/login)');
    if (!roleAtLeast(request.actor.role, access)) {
      throw new ForbiddenError(`this needs the ${access} role; you are ${request.actor.role ?? 'without a role'}`);
    }
  });
}
