import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, startWebhookDelivery } from '../server/roles.ts';
import { retryDelayMs } from './delivery-worker.ts';
import { refusedUrl } from './url-safety.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, sqlOf, type TestContext } from '../../test/support/context.ts';
import { startReceiver, type Receiver } from '../../test/support/webhook-receiver.ts';
import { pollUntil } from '../../test/support/poll.ts';

const ADMIN = { 'x-test-role': 'admin' };
const SECRET = 'receiver-secret-0123456789';
const FAST = { pollMs: 50, backoffBaseMs: 100 };

describe('webhook endpoints API', () => {
  let t: TestContext;
  let api: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite());
    api = await buildApiServer(t.ctx);
  });
  after(async () => {
    await api.close();
    await t.close();
  });

  test('admin only: operators and viewers get 403, anonymous 401', async () => {
    for (const [role, status] of [['operator', 403], ['viewer', 403], [undefined, 401]] as const) {
      const headers = role ? { 'x-test-role': role } : {};
      assert.equal((await api.inject({ url: '/api/v1/webhooks', headers })).statusCode, status);
      const post = await api.inject({ method: 'POST', url: '/api/v1/webhooks', headers, payload: { url: 'https://hooks.example.com/x', events: ['*'], secret: SECRET } });
      assert.equal(post.statusCode, status);
    }
    assert.equal((await api.inject({ url: '/api/v1/webhooks', headers: ADMIN })).json().items.length, 0);
  });

  test('refused URLs and bad fields: 400 naming what was wrong, and nothing is created', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ url: 'http://169.254.169.254/latest/meta-data/' }, /link-local or cloud metadata/],
      [{ url: 'http://[fe80::1]/' }, /link-local/],
      [{ url: 'http://[::ffff:169.254.169.254]/' }, /link-local or cloud metadata/],
      [{ url: 'http://metadata.google.internal/computeMetadata/v1/' }, /cloud metadata service/],
      [{ url: 'http://127.0.0.1:9/hook' }, /loopback.*METAL_WEBHOOK_ALLOW_LOOPBACK=1/],
      [{ url: 'http://localhost/hook' }, /loopback/],
      [{ url: 'ftp://hooks.example.com/' }, /http:\/\/ or https:\/\//],
      [{ url: 'https://user:pw@hooks.example.com/' }, /credentials/],
      [{ events: ['machine.exploded'] }, /unknown event type "machine.exploded"/],
      [{ events: [] }, /at least one event type/],
      [{ secret: 'short' }, /secret must be 16 to 256 characters/],
    ];
    for (const [override, message] of cases) {
      const r = await api.inject({ method: 'POST', url: '/api/v1/webhooks', headers: ADMIN, payload: { url: 'https://hooks.example.com/x', events: ['*'], secret: SECRET, ...override } });
      assert.equal(r.statusCode, 400, JSON.stringify(override));
      assert.equal(r.json().error.code, 'invalid_input');
      assert.match(r.json().error.message, message);
    }
    const missing = await api.inject({ method: 'POST', url: '/api/v1/webhooks', headers: ADMIN, payload: { url: 'https://hooks.example.com/x', events: ['*'] } });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.json().error.message, /secret/);
    assert.equal((await api.inject({ url: '/api/v1/webhooks', headers: ADMIN })).json().items.length, 0);
  });

  test('create, read (never the secret), update, delete; each change is an event', async () => {
    const created = await api.inject({ method: 'POST', url: '/api/v1/webhooks', headers: ADMIN, payload: { url: 'https://hooks.example.com/x', events: ['build.*', 'machine.enrolled'], secret: SECRET } });
    assert.equal(created.statusCode, 201);
    const w = created.json();
    assert.deepEqual([w.url, w.events, w.enabled], ['https://hooks.example.com/x', ['build.*', 'machine.enrolled'], true]);
    assert.doesNotMatch(created.body, new RegExp(SECRET));
    const row = await sqlOf(t.ctx).selectFrom('webhooks').select('secret').where('id', '=', w.id).executeTakeFirstOrThrow();
    assert.match(row.secret, /^v1:/, 'the secret is sealed at rest');
    assert.equal(row.secret.includes(SECRET), false);
    const read = await api.inject({ url: `/api/v1/webhooks/${w.id}`, headers: ADMIN });
    assert.doesNotMatch(read.body, new RegExp(SECRET));
    const put = await api.inject({ method: 'PUT', url: `/api/v1/webhooks/${w.id}`, headers: ADMIN, payload: { enabled: false, url: 'http://169.254.169.254/' } });
    assert.equal(put.statusCode, 400, 'a refused URL in an update changes nothing');
    assert.equal((await api.inject({ url: `/api/v1/webhooks/${w.id}`, headers: ADMIN })).json().enabled, true);
    const off = await api.inject({ method: 'PUT', url: `/api/v1/webhooks/${w.id}`, headers: ADMIN, payload: { enabled: false } });
    assert.equal(off.json().enabled, false);
    assert.equal((await api.inject({ method: 'DELETE', url: `/api/v1/webhooks/${w.id}`, headers: ADMIN })).statusCode, 204);
    assert.equal((await api.inject({ url: `/api/v1/webhooks/${w.id}`, headers: ADMIN })).statusCode, 404);
    const kinds = (await t.ctx.storage.events.list({})).items.map((e) => e.kind).filter((k) => k.startsWith('webhook.'));
    assert.deepEqual(kinds, ['webhook.deleted', 'webhook.updated', 'webhook.created']);
  });
});

describe('URL checks and backoff', () => {
  test('loopback only when allowed; link-local and metadata never', () => {
    assert.equal(refusedUrl('http://127.0.0.1:8080/hook', true), undefined);
    assert.match(refusedUrl('http://169.254.169.254/', true)!, /metadata/);
    assert.match(refusedUrl('http://100.100.100.200/', true)!, /metadata/);
    assert.match(refusedUrl('http://[fd00:ec2::254]/', true)!, /metadata/);
    assert.equal(refusedUrl('https://hooks.example.com/metal', false), undefined);
  });

  test('the first retry comes within 5 s, the second within 30 s, later ones at most an hour apart, with jitter', () => {
    assert.ok(retryDelayMs(1, 2000, () => 1) <= 5000);
    assert.ok(retryDelayMs(2, 2000, () => 1) <= 30_000);
    assert.equal(retryDelayMs(20, 2000, () => 1), 3600_000);
    assert.equal(retryDelayMs(1, 2000, () => 0), 1000);
  });
});

describe('deliveries to a real receiver on loopback', () => {
  let t: TestContext;
  let api: FastifyInstance;
  let receiver: Receiver;
  let stopWorker: () => Promise<void>;

  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_WEBHOOK_ALLOW_LOOPBACK: '1' });
    api = await buildApiServer(t.ctx);
    receiver = await startReceiver(SECRET);
    const worker = startWebhookDelivery(t.ctx, { ...FAST, giveUpAfterMs: 60_000 });
    stopWorker = () => worker.stop();
  });
  after(async () => {
    await stopWorker();
    await api.close();
    await receiver.close();
    await t.close();
  });

  const createHook = async (events: string[], url = receiver.url): Promise<number> => {
    const r = await api.inject({ method: 'POST', url: '/api/v1/webhooks', headers: ADMIN, payload: { url, events, secret: SECRET } });
    assert.equal(r.statusCode, 201, r.body);
    return r.json().id;
  };

  test('an enrollment is delivered signed, with the documented headers and body', { timeout: 60_000 }, async () => {
    const id = await createHook(['machine.enrolled']);
    assert.equal((await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('HOOKED1') })).statusCode, 201);
    await receiver.waitFor('the enrollment delivery', (r) => r.length >= 1);
    const got = receiver.received[0]!;
    assert.equal(got.signatureValid, true);
    assert.equal(got.headers['x-metal-event'], 'machine.enrolled');
    assert.match(String(got.headers['x-metal-delivery']), /^[0-9a-f-]{36}$/);
    assert.match(String(got.headers['x-metal-timestamp']), /^\d{10}$/);
    assert.match(String(got.headers['x-metal-signature']), /^sha256=[0-9a-f]{64}$/);
    const body = JSON.parse(got.body);
    assert.equal(body.type, 'machine.enrolled');
    assert.equal(body.machine.service_tag, 'HOOKED1');
    assert.deepEqual(body.actor, { kind: 'machine', name: 'HOOKED1' });
    assert.equal(typeof body.id, 'number');
    assert.ok(!Number.isNaN(Date.parse(body.occurred_at)));
    assert.equal(body.data.message, 'HOOKED1 enrolled');
    // A tampered body does not verify.
    const { verifySignature } = await import('../../test/support/webhook-receiver.ts');
    assert.equal(verifySignature(SECRET, got.headers, got.body.replace('HOOKED1', 'HOOKED2')), false);
    await waitForDelivery(id, (d) => d.status === 'delivered');
    const list = (await api.inject({ url: `/api/v1/webhooks/${id}/deliveries`, headers: ADMIN })).json();
    assert.equal(list.items[0].last_status_code, 200);
    assert.equal(list.items[0].response_excerpt, 'status 200');
    assert.equal(list.items[0].delivery_id, got.headers['x-metal-delivery']);
    await api.inject({ method: 'DELETE', url: `/api/v1/webhooks/${id}`, headers: ADMIN });
  });

  test('a receiver answering 500 twice then 200 gets the delivery on the third try, same delivery id', { timeout: 60_000 }, async () => {
    receiver.received.length = 0;
    let calls = 0;
    receiver.answer = () => (++calls <= 2 ? 500 : 200);
    const id = await createHook(['machine.enrolled']);
    await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('RETRY1') });
    await receiver.waitFor('three attempts', (r) => r.length >= 3);
    assert.deepEqual(receiver.received.map((r) => r.answered), [500, 500, 200]);
    assert.equal(new Set(receiver.received.map((r) => r.headers['x-metal-delivery'])).size, 1, 'a retry keeps the delivery id');
    assert.ok(receiver.received.every((r) => r.signatureValid));
    const d = await waitForDelivery(id, (x) => x.status === 'delivered');
    assert.equal(d.attempts, 3);
    receiver.answer = () => 200;
    await api.inject({ method: 'DELETE', url: `/api/v1/webhooks/${id}`, headers: ADMIN });
  });

  test('a redirect is not followed; redeliver sends the payload again under a new delivery id', { timeout: 60_000 }, async () => {
    receiver.received.length = 0;
    receiver.answer = (r) => (r.headers['x-metal-event'] === 'machine.enrolled' && receiver.received.length === 0 ? { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } } : 200);
    const id = await createHook(['machine.enrolled']);
    await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('REDIR1') });
    const d = await waitForDelivery(id, (x) => x.attempts >= 1);
    assert.equal(d.last_status_code, 302);
    assert.match(d.last_error ?? '', /redirects are not followed/);
    await waitForDelivery(id, (x) => x.status === 'delivered');
    const again = await api.inject({ method: 'POST', url: `/api/v1/webhooks/${id}/deliveries/${d.id}/redeliver`, headers: ADMIN });
    assert.equal(again.statusCode, 202);
    await receiver.waitFor('the redelivery', (r) => r.filter((x) => x.answered === 200).length >= 2);
    const ok = receiver.received.filter((x) => x.answered === 200);
    assert.equal(ok[0]!.body, ok[1]!.body);
    assert.notEqual(ok[0]!.headers['x-metal-delivery'], ok[1]!.headers['x-metal-delivery']);
    const missing = await api.inject({ method: 'POST', url: `/api/v1/webhooks/${id}/deliveries/999999/redeliver`, headers: ADMIN });
    assert.equal(missing.statusCode, 404);
    receiver.answer = () => 200;
    await api.inject({ method: 'DELETE', url: `/api/v1/webhooks/${id}`, headers: ADMIN });
  });

  const waitForDelivery = async (webhookId: number, until: (d: Record<string, unknown> & { status: string; attempts: number; id: number; last_status_code: number | null; last_error: string | null }) => boolean) => {
    let item: Awaited<ReturnType<typeof t.ctx.storage.webhooks.deliveries>>['items'][number] | undefined;
    return pollUntil(
      `delivery of webhook ${webhookId} as expected`,
      async () => {
        item = (await t.ctx.storage.webhooks.deliveries(webhookId, 1, 0)).items[0];
        return item !== undefined && until(item as never) && item;
      },
      { timeoutMs: 30_000, intervalMs: 50, state: () => item },
    );
  };
});

describe('an endpoint failing for the whole give-up period', () => {
  test('is disabled automatically, with a webhook.disabled event; its delivery is given up', { timeout: 60_000 }, async () => {
    const t = await createTestContext(freshSqlite(), { METAL_WEBHOOK_ALLOW_LOOPBACK: '1' });
    const receiver = await startReceiver(SECRET, () => 503);
    const worker = startWebhookDelivery(t.ctx, { pollMs: 20, backoffBaseMs: 20, giveUpAfterMs: 400 });
    try {
      const w = await t.ctx.webhooks.create({ url: receiver.url, events: ['*'], secret: SECRET }, { kind: 'system', name: 'system' });
      await pollUntil('the endpoint is disabled', async () => !(await t.ctx.storage.webhooks.get(w.id))!.enabled, { timeoutMs: 30_000, intervalMs: 50 });
      const hook = (await t.ctx.storage.webhooks.get(w.id))!;
      assert.match(hook.disabled_reason ?? '', /every delivery since .* failed/);
      const disabled = await t.ctx.storage.events.list({ kind: 'webhook.disabled' });
      assert.equal(disabled.total, 1);
      // Its own webhook.created event was its first delivery: retried, then given up.
      const d = (await t.ctx.storage.webhooks.deliveries(w.id, 10, 0)).items.find((x) => x.event_type === 'webhook.created')!;
      assert.equal(d.status, 'failed');
      assert.ok(d.attempts >= 2, `attempts: ${d.attempts}`);
      assert.equal(d.last_status_code, 503);
      assert.equal(d.next_attempt_at, null);
      const seen = receiver.received.length;
      // Re-enabled, it starts afresh.
      await t.ctx.webhooks.update(w.id, { enabled: true }, { kind: 'system', name: 'system' });
      assert.equal((await t.ctx.storage.webhooks.get(w.id))!.failing_since, null);
      assert.ok(seen >= 2);
    } finally {
      await worker.stop();
      await receiver.close();
      await t.close();
    }
  });
});
