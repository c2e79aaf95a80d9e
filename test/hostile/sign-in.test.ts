import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../support/auth-context.ts';
import { rateLimitDb } from '../../src/storage/rate-limit-store.ts';
import { sqlOf } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileString, runs } from '../support/hostile.ts';

/**
 * Generated sign-ins against the throttle, whose buckets live in the database (issue 19): never a
 * 5xx, a clear error, no session for a wrong password, and the buckets' rows keyed by a fixed-length
 * hash whatever the username or address was.
 */

const signIn = fc.record({
  username: fc.oneof(hostileString(70), fc.constant('admin')),
  password: fc.oneof(hostileString(40), fc.string({ minLength: 1, maxLength: 300 })),
  // A few addresses, so some budgets run out; IPv6 ones count by their /64.
  address: fc.constantFrom('192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::ffff', '::ffff:192.0.2.1'),
});

for (const kind of await testDatabaseKinds()) {
  describe(`hostile sign-ins on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: AuthTestContext;
    before(async () => {
      t = await createAuthTestContext(kind.fresh());
    });
    after(() => t.close());

    test('generated usernames, passwords and addresses: no 5xx, no session, bounded bucket rows', async () => {
      const sessionsBefore = await sqlOf(t.ctx).selectFrom('sessions').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
      await fc.assert(
        fc.asyncProperty(signIn, async ({ username, password, address }) => {
          fc.pre(password !== TEST_ADMIN_PASSWORD);
          const r = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress: address });
          const what = `${JSON.stringify(username)} from ${address}: ${r.statusCode} ${r.body.slice(0, 200)}`;
          assert.ok([400, 401, 429].includes(r.statusCode), what);
          const body = r.json() as { error?: { code?: unknown; message?: unknown } };
          assert.equal(typeof body.error?.code, 'string', what);
          assert.equal(typeof body.error?.message, 'string', what);
        }),
        { seed: 19, numRuns: runs(40) },
      );
      const sessionsAfter = await sqlOf(t.ctx).selectFrom('sessions').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(sessionsAfter.n), Number(sessionsBefore.n), 'no session was opened');
      const rows = await rateLimitDb(sqlOf(t.ctx)).selectFrom('rate_limits').select(['bucket', 'key']).execute();
      assert.ok(rows.length > 0 && rows.length <= 4 + 2 * runs(40), `${rows.length} bucket rows`);
      for (const row of rows) {
        assert.match(row.key, /^[0-9a-f]{32}$/, 'keys are a fixed-length hash');
        assert.ok(['login:address', 'login:address-user'].includes(row.bucket), row.bucket);
      }
      const addresses = rows.filter((r) => r.bucket === 'login:address').length;
      assert.ok(addresses <= 3, `one bucket per address (IPv6 by its /64, mapped IPv4 as IPv4): ${addresses}`);
    });
  });
}
