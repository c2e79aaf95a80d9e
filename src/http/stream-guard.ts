import type { FastifyRequest } from 'fastify';

/**
 * Watches the credential behind a long-lived response (a followed build log, a dashboard stream) and
 * caps how many such responses one user holds open. Implemented in src/auth/stream-guard.ts.
 */
export interface StreamGuard {
  /**
   * Admits one more stream for the caller of `request`, or throws RateLimitedError (429) when they
   * already hold the most allowed. `onRevoked` is called once if the caller's session or token stops
   * being valid (signed out, revoked, expired, account disabled or removed) while the stream is open.
   * Returns the function to call when the stream ends, whatever the reason (safe to call twice).
   */
  admit(request: FastifyRequest, onRevoked: () => void): () => void;
}

