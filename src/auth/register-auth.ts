import type { FastifyInstance } from 'fastify';
import type { AuthService } from './auth-service.ts';
import { registerAuthRoutes } from './auth-routes.ts';
import { registerEventRoutes, type EventRouteOptions } from './event-routes.ts';
import { installSecurityHeaders } from './security-headers.ts';
import { verifyCsrf } from './session-cookie.ts';
import { registerTokenRoutes } from './token-routes.ts';
import { registerUserRoutes } from './user-routes.ts';

/** What authentication's routes use. */
export interface AuthRouteOptions extends EventRouteOptions {
  auth: AuthService;
}

/**
 * Everything authentication adds to the API listener: security headers, CSRF checks on every
 * cookie-authenticated change (public routes excepted), and the auth, user, token and event routes.
 */
export function registerAuth(app: FastifyInstance, options: AuthRouteOptions): void {
  installSecurityHeaders(app);
  // Before body validation, so a forged request is refused as such whatever its body.
  app.addHook('preValidation', async (request, reply) => {
    if (request.routeOptions.config.access === 'public') return;
    await verifyCsrf.call(app, request, reply);
  });
  registerAuthRoutes(app, options.auth);
  registerUserRoutes(app, options.auth);
  registerTokenRoutes(app, options.auth);
  registerEventRoutes(app, options);
}
