import type { onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config/config.ts';
import { RateLimitedError, UnauthorizedError } from '../core/errors.ts';
import { constantTimeEqual } from './opaque-token.ts';
import { RateLimiter } from './rate-limiter.ts';

/** The header the registration agent sends METAL_ENROLL_TOKEN in. */
export const ENROLL_TOKEN_HEADER = 'x-metal-enroll-token';

/**
 * The onRequest hook of POST /api/v1/enroll, run on the headers before the body is read: at most
 * METAL_ENROLL_RATE enrollments per minute from one source address (the forwarded one behind a
 * trusted proxy), and the enrollment token when one is set.
 */
export function createEnrollGuard(config: Pick<Config, 'enrollRate' | 'enrollToken'>, now?: () => number): onRequestAsyncHookHandler {
  const limiter = config.enrollRate > 0 ? new RateLimiter({ capacity: config.enrollRate, refillSeconds: 60, ...(now ? { now } : {}) }) : undefined;
  const expected = config.enrollToken;
  return async (request) => {
    if (limiter) {
      const take = limiter.take(request.ip);
      if (!take.allowed) {
        throw new RateLimitedError(`too many enrollments from ${request.ip}; at most ${config.enrollRate} per minute (METAL_ENROLL_RATE)`, take.retryAfterSeconds);
      }
    }
    if (expected !== undefined) {
      const sent = request.headers[ENROLL_TOKEN_HEADER];
      if (typeof sent !== 'string' || sent === '') throw new UnauthorizedError(`enrollment needs the ${ENROLL_TOKEN_HEADER} header (METAL_ENROLL_TOKEN is set)`);
      if (!constantTimeEqual(sent, expected)) throw new UnauthorizedError('wrong enrollment token');
    }
  };
}
