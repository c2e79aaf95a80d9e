/** The outcome of taking from a limiter: allowed, or how many seconds until the next try may pass. */
export type Take = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface RateLimiterOptions {
  /** Attempts allowed in a burst, e.g. 5. */
  capacity: number;
  /** Seconds in which a full bucket refills, e.g. 900 for "5 per 15 minutes". */
  refillSeconds: number;
  /** Keys remembered at most; the least recently touched are forgotten first. */
  maxKeys?: number;
  /** Clock in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/**
 * A per-key token bucket held in memory (per process), with a bounded number of keys so a flood of
 * distinct addresses cannot exhaust memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly capacity: number;
  private readonly perMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: RateLimiterOptions) {
    this.capacity = options.capacity;
    this.perMs = options.capacity / (options.refillSeconds * 1000);
    this.maxKeys = options.maxKeys ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Takes one attempt for `key` if one is left. */
  take(key: string): Take {
    const bucket = this.refilled(key);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)) };
  }

  /** Gives an attempt back (e.g. the sign-in succeeded). */
  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.capacity, bucket.tokens + 1);
  }

  /** Forgets `key`: its next attempts start from a full bucket. */
  reset(key: string): void {
    this.buckets.delete(key);
  }

  /** Keys currently remembered (for tests of the bound). */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
      bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.updatedAt) * this.perMs);
      bucket.updatedAt = now;
    } else {
      bucket = { tokens: this.capacity, updatedAt: now };
      while (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
    }
    // Re-inserted so Map order is least-recently-touched first.
    this.buckets.set(key, bucket);
    return bucket;
  }
}
