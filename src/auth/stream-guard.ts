import type { FastifyRequest } from 'fastify';
import { RateLimitedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { StreamGuard } from '../http/stream-guard.ts';
import type { AuthService } from './auth-service.ts';
import { requestAuth } from './authenticator.ts';

export interface StreamGuardOptions {
  /** Streams one user may hold open at once, e.g. 8; one more gets 429. */
  maxStreamsPerUser?: number;
  /** How often each open stream's credential is looked up again, in ms, e.g. 30000. */
  recheckMs?: number;
}

/** Streams one user may hold open at once by default. */
export const DEFAULT_MAX_STREAMS_PER_USER = 8;
/** How often an open stream's credential is checked again by default. */
export const DEFAULT_STREAM_RECHECK_MS = 30_000;
/** What a refused stream is told to wait, in seconds. */
const RETRY_AFTER_SECONDS = 5;

/**
 * The StreamGuard over real credentials: counts open streams per user in memory (per process), and
 * every `recheckMs` looks each stream's session or token up again, ending the stream when it died.
 */
export class CredentialStreamGuard implements StreamGuard {
  private readonly open = new Map<number, number>();
  private readonly max: number;
  private readonly recheckMs: number;

  constructor(
    private readonly auth: Pick<AuthService, 'isStillValid'>,
    private readonly logger: Logger,
    options: StreamGuardOptions = {},
  ) {
    this.max = options.maxStreamsPerUser ?? DEFAULT_MAX_STREAMS_PER_USER;
    this.recheckMs = options.recheckMs ?? DEFAULT_STREAM_RECHECK_MS;
  }

  admit(request: FastifyRequest, onRevoked: () => void): () => void {
    const found = requestAuth(request);
    // Only routes that need a role stream; without a credential there is nothing to watch.
    if (!found) return () => {};
    const { principal } = found;
    const held = this.open.get(principal.userId) ?? 0;
    if (held >= this.max) {
      throw new RateLimitedError(`too many open streams: ${principal.username} already has ${held} (at most ${this.max}); close one and try again`, RETRY_AFTER_SECONDS);
    }
    this.open.set(principal.userId, held + 1);
    let released = false;
    let checking = false;
    const release = () => {
      if (released) return;
      released = true;
      clearInterval(timer);
      const left = (this.open.get(principal.userId) ?? 1) - 1;
      if (left > 0) this.open.set(principal.userId, left);
      else this.open.delete(principal.userId);
    };
    const timer = setInterval(() => {
      if (checking || released) return;
      checking = true;
      this.auth
        .isStillValid(principal)
        .then((valid) => {
          if (valid || released) return;
          release();
          onRevoked();
        })
        .catch((err: unknown) => this.logger.warn({ err }, 'auth: could not check a stream’s credential; checking again later'))
        .finally(() => {
          checking = false;
        });
    }, this.recheckMs);
    timer.unref();
    return release;
  }

  /** Streams open for a user (for tests). */
  openFor(userId: number): number {
    return this.open.get(userId) ?? 0;
  }
}
