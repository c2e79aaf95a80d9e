import type { Logger } from '../core/logger.ts';
import type { RateLimitStore } from '../core/ports.ts';
import { RateLimiter, type Take } from './rate-limiter.ts';

/** How often a limiter deletes the buckets that are full again (rows that would change nothing). */
const SWEEP_INTERVAL_MS = 60_000;
/** How often a failing store is logged while a limiter falls back to its own bucket. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

export interface SharedRateLimiterOptions {
  /** The database's buckets, shared by every replica: the authority. */
  store: RateLimitStore;
  /** e.g. `login:address` */
  bucket: string;
  /** Attempts allowed in a burst, e.g. 5. */
  capacity: number;
  /** Seconds in which a full bucket refills, e.g. 900 for "5 per 15 minutes". */
  refillSeconds: number;
  /**
   * When the store fails: `closed` refuses (the error reaches the caller, the request fails);
   * `local` lets a bucket of this process's own takes decide, so the limit holds per replica until
   * the store answers again. That bucket is also checked first: when this process alone has used a
   * key's attempts up, the shared bucket is empty too, and a flood from one address costs no round
   * trip. (It is only sound without refunds and resets, which other replicas would not see: the
   * enrollment limit has none, the sign-in throttle has both and fails closed.)
   */
  onStoreFailure: 'closed' | 'local';
  logger: Logger;
  /** Clock in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** A token bucket per key kept in the database, so that N replicas together allow what one would. */
export class SharedRateLimiter {
  private readonly local: RateLimiter | undefined;
  private readonly now: () => number;
  private lastSweep = -Infinity;
  private lastFailureLog = -Infinity;

  constructor(private readonly o: SharedRateLimiterOptions) {
    this.now = o.now ?? Date.now;
    if (o.onStoreFailure === 'local') this.local = new RateLimiter({ capacity: o.capacity, refillSeconds: o.refillSeconds, now: this.now });
  }

  /** Takes one attempt for `key` if one is left, in this process and in the database. */
  async take(key: string): Promise<Take> {
    const local = this.local?.take(key);
    if (local && !local.allowed) return local;
    const now = this.now();
    try {
      await this.sweepNowAndThen(now);
      const shared = await this.o.store.take(this.o.bucket, key, this.o.capacity, this.o.refillSeconds, now);
      if (shared.allowed) return shared;
      // Other replicas used the attempts: this one's bucket only ever counts what the database allowed.
      this.local?.refund(key);
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(shared.retryAfterMs / 1000)) };
    } catch (err) {
      if (!local) {
        this.o.logger.error({ err, bucket: this.o.bucket }, `auth: the rate limit store failed; ${this.o.bucket} refused (fails closed)`);
        throw err;
      }
      if (now - this.lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
        this.lastFailureLog = now;
        this.o.logger.warn({ err, bucket: this.o.bucket }, `auth: the rate limit store failed; ${this.o.bucket} limited per process until it answers`);
      }
      return local;
    }
  }

  /** Gives an attempt back (e.g. the sign-in succeeded). */
  async refund(key: string): Promise<void> {
    await this.o.store.refund(this.o.bucket, key, this.o.capacity);
  }

  /** Forgets `key`: its next attempts start from a full bucket. */
  async reset(key: string): Promise<void> {
    await this.o.store.reset(this.o.bucket, key);
  }

  private async sweepNowAndThen(now: number): Promise<void> {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    await this.o.store.sweep(now);
  }
}
