import type { onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config/config.ts';
import { RateLimitedError, UnauthorizedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { RateLimitStore } from '../core/ports.ts';
import { constantTimeEqual } from './opaque-token.ts';
import { SharedRateLimiter } from './shared-rate-limiter.ts';

/** The header the registration agent sends METAL_ENROLL_TOKEN in. */
export const ENROLL_TOKEN_HEADER = 'x-metal-enroll-token';

/** What the enrollment limit counts in: the database's buckets, shared by every replica. */
export interface EnrollGuardDeps {
  store: RateLimitStore;
  logger: Logger;
  /** Clock in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/**
 * The onRequest hook of POST /api/v1/enroll, run on the headers before the body is read: at most
 * METAL_ENROLL_RATE enrollments per minute from one source address (the forwarded one behind a
 * trusted proxy) across every replica, and the enrollment token when one is set. When the database
 * does not answer, each process keeps the limit on its own (the enrollment itself then fails or not
 * on its own), rather than turning every machine away.
 */
export function createEnrollGuard(config: Pick<Config, 'enrollRate' | 'enrollToken'>, deps: EnrollGuardDeps): onRequestAsyncHookHandler {
  const limiter =
    config.enrollRate > 0
      ? new SharedRateLimiter({
          store: deps.store,
          bucket: 'enroll',
          capacity: config.enrollRate,
          refillSeconds: 60,
          onStoreFailure: 'local',
          logger: deps.logger,
          ...(deps.now ? { now: deps.now } : {}),
        })
      : undefined;
  const expected = config.enrollToken;
  return async (request) => {
    if (limiter) {
      const take = await limiter.take(request.ip);
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
