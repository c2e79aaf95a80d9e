import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import type { RateLimitStore } from '../core/ports.ts';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { SharedRateLimiter } from './shared-rate-limiter.ts';

const T0 = Date.parse('2026-01-02T03:04:05.000Z');

/** The fake's buckets, counting calls, and failing while `broken` is set. */
function countingStore(): { store: RateLimitStore; calls: Record<string, number>; broken: { on: boolean } } {
  const inner = new MemoryStorage().rateLimits;
  const calls: Record<string, number> = { take: 0, sweep: 0 };
  const broken = { on: false };
  const guard = <T>(name: string, fn: () => Promise<T>) => {
    calls[name] = (calls[name] ?? 0) + 1;
    return broken.on ? Promise.reject(new Error('database: connection refused')) : fn();
  };
  const store: RateLimitStore = {
    take: (...a) => guard('take', () => inner.take(...a)),
    refund: (...a) => guard('refund', () => inner.refund(...a)),
    reset: (...a) => guard('reset', () => inner.reset(...a)),
    sweep: (...a) => guard('sweep', () => inner.sweep(...a)),
  };
  return { store, calls, broken };
}

function limiter(store: RateLimitStore, onStoreFailure: 'closed' | 'local', clock: { t: number }): SharedRateLimiter {
  return new SharedRateLimiter({ store, bucket: 'enroll', capacity: 3, refillSeconds: 60, onStoreFailure, logger: createLogger('silent'), now: () => clock.t });
}

describe('SharedRateLimiter', () => {
  test('two limiters on one store (two replicas) allow the capacity once between them', async () => {
    const { store } = countingStore();
    const clock = { t: T0 };
    const [a, b] = [limiter(store, 'local', clock), limiter(store, 'local', clock)];
    const results = [];
    for (let i = 0; i < 6; i++) results.push((await (i % 2 === 0 ? a : b).take('10.0.0.1')).allowed);
    assert.deepEqual(results, [true, true, true, false, false, false]);
    assert.deepEqual(await a.take('10.0.0.1'), { allowed: false, retryAfterSeconds: 20 });
    clock.t += 20_000;
    assert.deepEqual(await b.take('10.0.0.1'), { allowed: true }, 'one attempt back after 20 s, for either');
  });

  test('a refusal by the database does not use up this process\'s own bucket', async () => {
    const { store } = countingStore();
    const clock = { t: T0 };
    const [a, b] = [limiter(store, 'local', clock), limiter(store, 'local', clock)];
    for (let i = 0; i < 3; i++) await a.take('k');
    for (let i = 0; i < 5; i++) assert.equal((await b.take('k')).allowed, false);
    clock.t += 20_000;
    assert.equal((await b.take('k')).allowed, true, 'b refused five times, yet takes the refilled attempt');
  });

  test('once this process used a key up, a flood from it costs no round trip', async () => {
    const { store, calls } = countingStore();
    const a = limiter(store, 'local', { t: T0 });
    for (let i = 0; i < 100; i++) await a.take('10.0.0.1');
    assert.equal(calls.take, 3);
  });

  test('the enrollment limit falls back to this process\'s bucket while the store fails', async () => {
    const { store, broken } = countingStore();
    const a = limiter(store, 'local', { t: T0 });
    broken.on = true;
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await a.take('10.0.0.1')).allowed);
    assert.deepEqual(results, [true, true, true, false]);
  });

  test('the sign-in throttle fails closed: the store\'s error reaches the caller', async () => {
    const { store, broken } = countingStore();
    const a = limiter(store, 'closed', { t: T0 });
    broken.on = true;
    await assert.rejects(a.take('10.0.0.1'), /connection refused/);
    broken.on = false;
    assert.deepEqual(await a.take('10.0.0.1'), { allowed: true });
  });

  test('buckets that are full again are swept at most once a minute per limiter', async () => {
    const { store, calls } = countingStore();
    const clock = { t: T0 };
    const a = limiter(store, 'closed', clock);
    for (let i = 0; i < 10; i++) await a.take(`10.0.0.${i}`);
    assert.equal(calls.sweep, 1);
    clock.t += 60_000;
    await a.take('10.0.1.1');
    assert.equal(calls.sweep, 2);
  });
});
