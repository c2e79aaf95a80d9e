import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimiter } from './rate-limiter.ts';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('RateLimiter', () => {
  test('allows `capacity` attempts, then says when the next one may pass', () => {
    const c = clock();
    const limiter = new RateLimiter({ capacity: 5, refillSeconds: 900, now: c.now });
    for (let i = 0; i < 5; i++) assert.deepEqual(limiter.take('alice'), { allowed: true });
    assert.deepEqual(limiter.take('alice'), { allowed: false, retryAfterSeconds: 180 });
    c.advance(179_000);
    assert.deepEqual(limiter.take('alice'), { allowed: false, retryAfterSeconds: 1 });
    c.advance(1_000);
    assert.deepEqual(limiter.take('alice'), { allowed: true });
  });

  test('keys are independent', () => {
    const limiter = new RateLimiter({ capacity: 1, refillSeconds: 60, now: clock().now });
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    assert.equal(limiter.take('b').allowed, true);
  });

  test('a full refill never exceeds the capacity', () => {
    const c = clock();
    const limiter = new RateLimiter({ capacity: 2, refillSeconds: 60, now: c.now });
    limiter.take('k');
    c.advance(3_600_000);
    assert.equal(limiter.take('k').allowed, true);
    assert.equal(limiter.take('k').allowed, true);
    assert.equal(limiter.take('k').allowed, false);
  });

  test('refund and reset give attempts back', () => {
    const limiter = new RateLimiter({ capacity: 1, refillSeconds: 60, now: clock().now });
    limiter.take('k');
    limiter.refund('k');
    assert.equal(limiter.take('k').allowed, true);
    limiter.reset('k');
    assert.equal(limiter.take('k').allowed, true);
  });

  test('memory stays bounded: the least recently touched keys are forgotten', () => {
    const limiter = new RateLimiter({ capacity: 1, refillSeconds: 60, maxKeys: 100, now: clock().now });
    limiter.take('first');
    for (let i = 0; i < 10_000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(limiter.size, 100);
    assert.equal(limiter.take('first').allowed, true, 'an evicted key starts afresh');
  });
});
