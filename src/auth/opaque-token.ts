import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefix of a sign-in session token, so a leaked one is recognisable. */
export const SESSION_PREFIX = 'ms_';
/** Prefix of a named API token. */
export const API_TOKEN_PREFIX = 'mt_';

/** A new unguessable token (256 random bits) with the given prefix. */
export function generateToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** How a token is stored and looked up: SHA-256, hex. A fast hash suffices for 256 random bits. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A plausible token shape: the prefix then 43 base64url characters. Anything else is refused unread. */
export function isTokenShape(token: string, prefix: string): boolean {
  return token.length === prefix.length + 43 && token.startsWith(prefix) && /^[A-Za-z0-9_-]+$/.test(token.slice(prefix.length));
}

/** Compares two secrets in time independent of where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** A random password for a new account: 24 characters of base64url. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
