import { buildApiServer, startBuilder } from '../../server/roles.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createTestContext, type TestContext } from '../../../test/support/context.ts';
import { testDatabaseKinds } from '../../../test/support/databases.ts';
import type { RunningBuilder } from '../../builder/builder.ts';
import { LogFollower } from './build-log-routes.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, requestBuild, uniqueConfig, waitForBuild } from '../../../test/support/builder.ts';

const viewer = { 'x-test-role': 'viewer' };
const hasNix = nixBuildAvailable();

test('log follower: sends only new text, and a reason put in front at the end comes last', () => {
  const f = new LogFollower();
  assert.equal(f.next(''), '');
  assert.equal(f.next('a\nb\n'), 'a\nb\n');
  assert.equal(f.next('a\nb\n'), '');
  assert.equal(f.next('a\nb\nc\n'), 'c\n');
  assert.equal(f.next('error: boom\na\nb\nc\nd\n'), 'd\nerror: boom\n');
  assert.equal(f.next('error: boom\na\nb\nc\nd\n'), '');
});

for (const kind of await testDatabaseKinds()) {
  describe(`build log route on ${kind.name}`, () => {
    let t: TestContext;
    let api: FastifyInstance;
    let builder: RunningBuilder | undefined;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_NIX_ENTRY: FIXTURES.slow });
      api = await buildApiServer(t.ctx);
    });
    after(async () => {
      await builder?.stop();
      await api.close();
      await t.close();
    });

    test('unknown build: 404; no credentials: 401', async () => {
      const missing = await api.inject({ url: '/api/v1/builds/999/log', headers: viewer });
      assert.equal(missing.statusCode, 404);
      assert.deepEqual(missing.json(), { error: { code: 'not_found', message: 'build 999 not found' } });
      const anonymous = await api.inject({ url: '/api/v1/builds/999/log?follow=1' });
      assert.equal(anonymous.statusCode, 401);
      assert.equal(anonymous.json().error.code, 'unauthorized');
      const bad = await api.inject({ url: '/api/v1/builds/1/log?follow=yes', headers: viewer });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().error.code, 'invalid_input');
    });

    // Bounded: a close held open by a keep-alive connection waited for Node's 72 s server timeout.
    test('closing the API ends open log streams, and the close does not wait for idle connections', { timeout: 15_000 }, async () => {
      const other = await buildApiServer(t.ctx);
      const address = await other.listen({ host: '127.0.0.1', port: 0 });
      await enrollAndConfigure(other, 'LOG000', 'log-00', uniqueConfig());
      const id = await requestBuild(other, 'LOG000');
      const res = await fetch(`${address}/api/v1/builds/${id}/log?follow=1`, { headers: { ...viewer, accept: 'text/event-stream' } });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), `: build ${id}\n\n`);
      await other.close();
      for (;;) if ((await reader.read()).done) break;
      await t.ctx.builds.cancel(id, { kind: 'user', name: 'op' });
    });

    test('follow streams the log as nix-build writes it and ends with the build; SSE too', { skip: !hasNix }, async () => {
      builder = await startBuilder(t.ctx, { name: 'b1', logIntervalMs: 50 });
      await enrollAndConfigure(api, 'LOG001', 'log-01', uniqueConfig('  # metal-standin-sleep=2\n'));
      const id = await requestBuild(api, 'LOG001');
      await waitForBuild(t.ctx, id, (b) => b.status === 'building');
      const following = api.inject({ url: `/api/v1/builds/${id}/log?follow=1`, headers: viewer });
      const sse = api.inject({ url: `/api/v1/builds/${id}/log?follow=1`, headers: { ...viewer, accept: 'text/event-stream' } });
      const running = await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'));
      assert.equal(running.status, 'building', 'the log is readable while the build runs');
      const snapshot = await api.inject({ url: `/api/v1/builds/${id}/log`, headers: viewer });
      assert.equal(snapshot.statusCode, 200);
      assert.match(snapshot.headers['content-type'] as string, /^text\/plain/);
      assert.match(snapshot.body, /stand-in: working 0/);

      const [plain, events] = await Promise.all([following, sse]);
      const final = await t.ctx.builds.get(id);
      assert.equal(final.status, 'success', final.error ?? '');
      assert.equal(plain.statusCode, 200);
      assert.match(plain.headers['content-type'] as string, /^text\/plain/);
      assert.equal(plain.body, final.log_output, 'following yields the whole log, each part once');
      assert.match(events.headers['content-type'] as string, /^text\/event-stream/);
      assert.match(events.body, /^data: builder b1: building log-01/m);
      assert.match(events.body, /^data: stand-in: working 1$/m);
      assert.ok(events.body.endsWith('event: end\ndata: {"status":"success","error":null}\n\n'), events.body.slice(-200));
    });

    test('following a build that is cancelled ends the stream', { skip: !hasNix }, async () => {
      await builder?.stop();
      builder = await startBuilder(t.ctx, { name: 'b1', logIntervalMs: 50 });
      await enrollAndConfigure(api, 'LOG002', 'log-02', uniqueConfig());
      const id = await requestBuild(api, 'LOG002');
      await waitForBuild(t.ctx, id, (b) => b.log_output.includes('stand-in: working 0'));
      const following = api.inject({ url: `/api/v1/builds/${id}/log?follow=true`, headers: { ...viewer, accept: 'text/event-stream' } });
      const cancel = await api.inject({ method: 'POST', url: `/api/v1/builds/${id}/cancel`, headers: { 'x-test-role': 'operator' } });
      assert.equal(cancel.statusCode, 200);
      const r = await following;
      assert.ok(r.body.endsWith('event: end\ndata: {"status":"cancelled","error":"cancelled by user test-operator"}\n\n'), r.body.slice(-200));
    });
  });
}
