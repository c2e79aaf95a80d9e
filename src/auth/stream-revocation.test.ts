import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { enrollmentPayload } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { TEST_ADMIN_PASSWORD, createAuthTestContext, type AuthTestContext } from '../../test/support/auth-context.ts';

// Issue 13, item 8: a followed build log (API) and the dashboard's log stream used to outlive a
// revoked token or an ended session, and one user could hold any number of them open. Each stream
// now re-checks its credential (every 50 ms here, 30 s by default) and ends when it died; a user
// holds at most a few streams at once (3 here, 8 by default), and one more gets 429.

const MAX_STREAMS = 3;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** An open streamed response, read as text as it arrives. */
interface OpenStream {
  status: number;
  /** Reads until the text so far contains `needle`; fails when the stream ends first. */
  until(needle: string): Promise<string>;
  /** Reads until the server ends the stream; the whole text. */
  toEnd(): Promise<string>;
  abort(): void;
}

async function open(url: string, headers: Record<string, string>): Promise<OpenStream> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal, redirect: 'manual' });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    status: res.status,
    async until(needle) {
      while (!text.includes(needle)) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`the stream ended before ${JSON.stringify(needle)}; got ${JSON.stringify(text)}`);
        text += decoder.decode(value, { stream: true });
      }
      return text;
    },
    async toEnd() {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += decoder.decode(value, { stream: true });
      }
    },
    abort: () => controller.abort(),
  };
}

for (const kind of await testDatabaseKinds()) {
  describe(`log streams end with their credential, and are capped per user, on ${kind.name}`, () => {
    let t: AuthTestContext;
    let admin: string;
    let base: string;
    let serial = 0;
    before(async () => {
      t = await createAuthTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' }, { streams: { recheckMs: 50, maxStreamsPerUser: MAX_STREAMS } });
      admin = await t.login('admin', TEST_ADMIN_PASSWORD);
      base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    });
    after(() => t.close());

    /** A build that stays pending (no builder runs here), so streams of it stay open. */
    const pendingBuild = async (): Promise<number> => {
      const tag = `STREAM${++serial}`;
      assert.equal((await t.app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) })).statusCode, 201);
      const put = await t.app.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: bearer(admin), payload: { hostname: `stream-${serial}`, nixos_config: '{ ... }: { }\n' } });
      assert.equal(put.statusCode, 200, put.body);
      const build = await t.app.inject({ method: 'POST', url: `/api/v1/machines/${tag}/build`, headers: bearer(admin) });
      assert.equal(build.statusCode, 202, build.body);
      return build.json<{ id: number }>().id;
    };
    const cancel = async (id: number) => {
      assert.equal((await t.app.inject({ method: 'POST', url: `/api/v1/builds/${id}/cancel`, headers: bearer(admin) })).statusCode, 200);
    };
    const addUser = async (username: string) => {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: bearer(admin), payload: { username, role: 'viewer', password: `${username}-password` } });
      assert.equal(r.statusCode, 201, r.body);
      return t.login(username, `${username}-password`);
    };
    const follow = (id: number, headers: Record<string, string>, sse = true) =>
      open(`${base}/api/v1/builds/${id}/log?follow=1`, { ...headers, ...(sse ? { accept: 'text/event-stream' } : {}) });

    test('signing out ends a followed log (SSE says why)', { timeout: 15_000 }, async () => {
      const id = await pendingBuild();
      const session = await addUser('sal');
      const stream = await follow(id, bearer(session));
      assert.equal(stream.status, 200);
      await stream.until(`: build ${id}\n\n`);
      assert.equal((await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(session) })).statusCode, 204);
      const text = await stream.toEnd();
      assert.ok(text.endsWith('event: end\ndata: {"status":"signed-out","error":"the session or token of this stream ended"}\n\n'), text);
      await cancel(id);
    });

    test('revoking the API token ends a followed log (plain text)', { timeout: 15_000 }, async () => {
      const id = await pendingBuild();
      const session = await addUser('tom');
      const minted = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(session), payload: { name: 'ci' } });
      const { id: tokenId, token } = minted.json<{ id: number; token: string }>();
      const stream = await follow(id, bearer(token), false);
      assert.equal(stream.status, 200);
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${tokenId}`, headers: bearer(session) })).statusCode, 200);
      assert.equal(await stream.toEnd(), '', 'the stream ends (the pending build has no log yet)');
      await cancel(id);
    });

    test('disabling the account ends its followed logs', { timeout: 15_000 }, async () => {
      const id = await pendingBuild();
      const session = await addUser('dee');
      const stream = await follow(id, bearer(session));
      await stream.until(`: build ${id}\n\n`);
      assert.equal((await t.app.inject({ method: 'PUT', url: '/api/v1/users/dee', headers: bearer(admin), payload: { disabled: true } })).statusCode, 200);
      assert.match(await stream.toEnd(), /event: end\ndata: \{"status":"signed-out"/);
      await cancel(id);
    });

    test('the dashboard’s log stream ends when its session ends', { timeout: 15_000 }, async () => {
      const id = await pendingBuild();
      const session = await addUser('dora');
      const stream = await open(`${base}/builds/${id}/stream?offset=0`, { cookie: `metal_session=${session}` });
      assert.equal(stream.status, 200);
      await stream.until('event: status\n');
      assert.equal((await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(session) })).statusCode, 204);
      assert.match(await stream.toEnd(), /event: end\ndata: signed-out\n\n$/);
      await cancel(id);
    });

    test('a user holds at most the cap of streams, API and dashboard together; one more gets 429; others are not affected', { timeout: 15_000 }, async () => {
      const id = await pendingBuild();
      const session = await addUser('cap');
      const other = await t.login('cap', 'cap-password');
      const streams = [
        await follow(id, bearer(session)),
        await follow(id, bearer(other), false),
        await open(`${base}/builds/${id}/stream?offset=0`, { cookie: `metal_session=${session}` }),
      ];
      assert.deepEqual(streams.map((s) => s.status), [200, 200, 200]);
      await streams[0]!.until(`: build ${id}`);
      await streams[2]!.until('event: status\n');

      const refused = await t.app.inject({ url: `/api/v1/builds/${id}/log?follow=1`, headers: bearer(other) });
      assert.equal(refused.statusCode, 429);
      assert.equal(refused.json().error.code, 'rate_limited');
      assert.match(refused.json().error.message, new RegExp(`too many open streams: cap already has ${MAX_STREAMS} \\(at most ${MAX_STREAMS}\\)`));
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      const dashboard = await t.app.inject({ url: `/builds/${id}/stream?offset=0`, headers: { cookie: `metal_session=${session}` } });
      assert.equal(dashboard.statusCode, 429);
      assert.match(dashboard.body, /too many open streams/);
      // A plain read of the log is not a stream, and another user still streams.
      assert.equal((await t.app.inject({ url: `/api/v1/builds/${id}/log`, headers: bearer(session) })).statusCode, 200);
      const admins = await follow(id, bearer(admin));
      assert.equal(admins.status, 200);

      // When the streams end (here: the build is cancelled), their places come back.
      await cancel(id);
      await Promise.all([...streams, admins].map((s) => s.toEnd()));
      const next = await pendingBuild();
      const again = await follow(next, bearer(other));
      assert.equal(again.status, 200);
      await cancel(next);
      await again.toEnd();
    });
  });
}
