import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { ForbiddenError } from '../core/errors.ts';
import { SESSION_TTL_SECONDS, type AuthService, type LoginResult } from './auth-service.ts';
import { SESSION_COOKIE, requestAuth } from './authenticator.ts';
import { constantTimeEqual } from './opaque-token.ts';

function cookieAttributes(request: FastifyRequest): string {
  return `Path=/; HttpOnly; SameSite=Strict${request.protocol === 'https' ? '; Secure' : ''}`;
}

/**
 * Signs in with a username and password and sets the `metal_session` cookie (for the dashboard's
 * login form). Throws UnauthorizedError or RateLimitedError like POST /api/v1/auth/login.
 */
export async function logInWithCookie(auth: AuthService, request: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<LoginResult> {
  const result = await auth.login(username, password, request.ip);
  void reply.header('set-cookie', `${SESSION_COOKIE}=${result.token}; Max-Age=${SESSION_TTL_SECONDS}; ${cookieAttributes(request)}`);
  return result;
}

/** Ends the request's session (if it has one) and clears the cookie. */
export async function logOutWithCookie(auth: AuthService, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const current = requestAuth(request);
  if (current) await auth.logout(current.principal);
  void reply.header('set-cookie', `${SESSION_COOKIE}=; Max-Age=0; ${cookieAttributes(request)}`);
}

/** `Sec-Fetch-Site` values a browser sends for a request this site itself made (or the user typed). */
const OWN_FETCH_SITES = new Set(['same-origin', 'none']);

/**
 * Refuses (ForbiddenError) a browser request sent by another site. A browser's `Sec-Fetch-Site`
 * decides when present (`same-origin` or `none` pass); otherwise an `Origin` must name this server's
 * own host (as the request's Host, or X-Forwarded-Host from a trusted proxy); `Origin: null` is
 * refused. Requests with neither header (scripts, curl) pass. The login form uses it: it has no
 * session yet, so no CSRF token, and a cross-site post would sign the browser into the attacker's
 * account (login CSRF).
 */
export function checkSameOrigin(request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') {
    if (OWN_FETCH_SITES.has(site.trim().toLowerCase())) return;
    throw new ForbiddenError(`refused: the form was sent from another site (Sec-Fetch-Site: ${site.slice(0, 40)}); open this server's login page and sign in there`);
  }
  const origin = request.headers.origin;
  if (typeof origin === 'string' && originHost(origin) !== request.host.toLowerCase()) {
    throw new ForbiddenError(`refused: the form was sent from another site (Origin: ${origin.slice(0, 100)}); open this server's login page and sign in there`);
  }
}

/** The host[:port] of an Origin header, or undefined for `null` and anything that is not an http(s) origin. */
function originHost(origin: string): string | undefined {
  try {
    const url = new URL(origin.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.host.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** The CSRF token to embed in the dashboard's forms (`_csrf`) or htmx headers (`x-csrf-token`); undefined without a cookie session. */
export function csrfToken(request: FastifyRequest): string | undefined {
  return requestAuth(request)?.csrf;
}

/**
 * Refuses (403) a non-GET/HEAD request authenticated by the session cookie unless it carries the
 * session's CSRF token in the `_csrf` form field or the `x-csrf-token` header. Bearer and anonymous
 * requests pass: a browser cannot attach a bearer token across sites.
 */
export const verifyCsrf: preHandlerAsyncHookHandler = async (request) => {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return;
  const current = requestAuth(request);
  if (!current || current.via !== 'cookie' || !current.csrf) return;
  const header = request.headers['x-csrf-token'];
  const body = request.body as Record<string, unknown> | null | undefined;
  const field = body && typeof body === 'object' ? body._csrf : undefined;
  const sent = typeof header === 'string' ? header : typeof field === 'string' ? field : undefined;
  if (sent === undefined || !constantTimeEqual(sent, current.csrf)) {
    throw new ForbiddenError('missing or wrong CSRF token: reload the page and try again');
  }
};
