import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../http/access.ts';
import type { AuthService, Principal } from './auth-service.ts';

/** The dashboard's session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over https. */
export const SESSION_COOKIE = 'metal_session';

/** How the caller of a request was recognised. */
export interface RequestAuth {
  principal: Principal;
  /** `cookie` requests need a CSRF token on every change; `bearer` requests do not. */
  via: 'bearer' | 'cookie';
  /** Cookie sessions only: the token forms must send back as `_csrf` or `x-csrf-token`. */
  csrf?: string;
}

const AUTH = new WeakMap<FastifyRequest, RequestAuth>();

/** Who signed in for this request and how, or undefined for anonymous requests. */
export function requestAuth(request: FastifyRequest): RequestAuth | undefined {
  return AUTH.get(request);
}

/** Reads one cookie from the Cookie header without a parser dependency. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The real Authenticator: `Authorization: Bearer <ms_… or mt_…>` first, else the `metal_session`
 * cookie. Requests with neither cost no database query.
 */
export function createAuthenticator(auth: AuthService): Authenticator {
  return {
    async authenticate(request) {
      const header = request.headers.authorization;
      if (typeof header === 'string' && header.length > 0) {
        const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
        if (!m) return undefined;
        const principal = await auth.resolve(m[1]!);
        if (!principal) return undefined;
        AUTH.set(request, { principal, via: 'bearer' });
        return principal.actor;
      }
      const cookie = readCookie(request.headers.cookie, SESSION_COOKIE);
      if (!cookie) return undefined;
      const principal = await auth.resolve(cookie);
      if (!principal || principal.kind !== 'session') return undefined;
      AUTH.set(request, { principal, via: 'cookie', csrf: auth.csrfToken(cookie) });
      return principal.actor;
    },
  };
}
