import type { FastifyInstance } from 'fastify';
import { toHttpError } from '../http/error-handler.ts';
import { DomainError } from '../core/errors.ts';
import { checkSameOrigin, logInWithCookie, logOutWithCookie } from '../auth/session-cookie.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { LoginPage } from './pages/login-page.tsx';
import { field, queryParam, safeNext, sendHtml } from './render.ts';

const NOTICES: Record<string, string> = { 'signed-out': 'You are signed out.' };

/**
 * GET/POST /login (public) and POST /logout: the dashboard's cookie session. A login form posted from
 * another site is refused (403) before the password is even checked.
 */
export function registerSessionRoutes(app: FastifyInstance, deps: DashboardDeps): void {
  app.get('/login', { config: { access: 'public' } }, async (request, reply) => {
    const next = safeNext(queryParam(request, 'next'));
    if (request.actor.kind !== 'anonymous') return reply.redirect(next, 303);
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    return sendHtml(reply, <LoginPage next={next} {...(notice ? { notice } : {})} />);
  });

  app.post('/login', { config: { access: 'public' } }, async (request, reply) => {
    const username = field(request.body, 'username').trim();
    const next = safeNext(field(request.body, 'next'));
    try {
      checkSameOrigin(request);
      await logInWithCookie(deps.auth, request, reply, username, field(request.body, 'password'));
      return reply.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      const { status, retryAfter } = toHttpError(err);
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      return sendHtml(reply.code(status), <LoginPage next={next} username={username.slice(0, 64)} error={err.message} />);
    }
  });

  app.post('/logout', { config: { access: 'viewer' } }, async (request, reply) => {
    await logOutWithCookie(deps.auth, request, reply);
    return reply.redirect('/login?notice=signed-out', 303);
  });
}
