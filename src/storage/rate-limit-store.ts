import { createHash } from 'node:crypto';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { RateLimitStore, RateLimitTake } from '../core/ports.ts';
import type { Dialect } from './migrations/context.ts';

/** The table of migration 0015-rate-limits. Times are milliseconds since the epoch. */
export interface RateLimitsTable {
  /** e.g. `login:address` */
  bucket: string;
  /** The SHA-256 of the key (an address, an address and a username), hex, first 32 digits. */
  key: string;
  /** Attempts left at `updated_at` (fractional while refilling). */
  tokens: number;
  /** 1 when the last take was allowed. */
  allowed: number;
  updated_at: number;
  /** When the bucket is full again: the row can be deleted then. */
  expires_at: number;
}

export interface RateLimitSchema {
  rate_limits: RateLimitsTable;
}

/** The same database handle, typed for the rate limit table. */
export function rateLimitDb<T>(db: Kysely<T>): Kysely<RateLimitSchema> {
  return db as unknown as Kysely<RateLimitSchema>;
}

/** A bounded, fixed-length stand-in for a key of any length (a username can be long). */
export function hashRateLimitKey(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

const num = (value: number): RawBuilder<number> => sql<number>`cast(${value} as double precision)`;

/**
 * Token buckets in one table. A take is one `INSERT … ON CONFLICT DO UPDATE … RETURNING` whose
 * refill is computed in SQL from the stored row: PostgreSQL locks the row for the statement and
 * re-reads it when another take committed first, SQLite runs it under its one writer lock, so
 * concurrent takes from any number of processes never pass more than `capacity`.
 */
export class SqlRateLimitStore implements RateLimitStore {
  constructor(
    private readonly db: Kysely<RateLimitSchema>,
    private readonly dialect: Dialect,
  ) {}

  async take(bucket: string, key: string, capacity: number, refillSeconds: number, now: number): Promise<RateLimitTake> {
    const refillMs = refillSeconds * 1000;
    const [least, greatest] = this.dialect === 'postgres' ? ['least', 'greatest'] : ['min', 'max'];
    const cap = num(capacity);
    const at = num(now);
    const window = num(refillMs);
    // Attempts in the stored bucket at `now`: what was left plus the refill since, at most `capacity`
    // (a clock that went back refills nothing).
    const refilled = sql`${sql.raw(least)}(${cap}, rate_limits.tokens + ${sql.raw(greatest)}(0, ${at} - rate_limits.updated_at) * ${cap} / ${window})`;
    const left = sql`case when ${refilled} >= 1 then ${refilled} - 1 else ${refilled} end`;
    const result = await sql<{ tokens: number; allowed: number }>`
      insert into rate_limits (bucket, key, tokens, allowed, updated_at, expires_at)
      values (${bucket}, ${hashRateLimitKey(key)}, ${num(capacity - 1)}, 1, ${at}, ${num(now + refillMs / capacity)})
      on conflict (bucket, key) do update set
        tokens = ${left},
        allowed = case when ${refilled} >= 1 then 1 else 0 end,
        updated_at = ${sql.raw(greatest)}(rate_limits.updated_at, ${at}),
        expires_at = ${at} + (${cap} - (${left})) * ${window} / ${cap}
      returning tokens, allowed`.execute(this.db);
    const row = result.rows[0]!;
    if (Number(row.allowed) === 1) return { allowed: true };
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(((1 - Number(row.tokens)) * refillMs) / capacity)) };
  }

  async refund(bucket: string, key: string, capacity: number): Promise<void> {
    const least = this.dialect === 'postgres' ? 'least' : 'min';
    await this.db
      .updateTable('rate_limits')
      .set({ tokens: sql<number>`${sql.raw(least)}(${num(capacity)}, tokens + 1)` })
      .where('bucket', '=', bucket)
      .where('key', '=', hashRateLimitKey(key))
      .execute();
  }

  async reset(bucket: string, key: string): Promise<void> {
    await this.db.deleteFrom('rate_limits').where('bucket', '=', bucket).where('key', '=', hashRateLimitKey(key)).execute();
  }

  async sweep(now: number): Promise<number> {
    const result = await this.db.deleteFrom('rate_limits').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
