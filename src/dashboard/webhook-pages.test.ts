import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../server/roles.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

const admin = { 'x-test-role': 'admin' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const encode = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const SECRET = 'dashboard-secret-0123456789';

describe('the webhooks page', () => {
  let t: TestContext;
  let app: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite());
    app = await buildApiServer(t.ctx);
  });
  after(async () => {
    await app.close();
    await t.close();
  });

  test('admins only: the page and its forms are refused to operators, and not in their navigation', async () => {
    const page = await app.inject({ url: '/admin/webhooks', headers: { 'x-test-role': 'operator' } });
    assert.equal(page.statusCode, 403);
    const post = await app.inject({ method: 'POST', url: '/admin/webhooks', headers: { 'x-test-role': 'operator', ...form }, payload: encode({ url: 'https://hooks.example.com/x', events: '*', secret: SECRET }) });
    assert.equal(post.statusCode, 403);
    assert.equal((await t.ctx.webhooks.list()).length, 0);
    assert.doesNotMatch((await app.inject({ url: '/', headers: { 'x-test-role': 'operator' } })).body, /href="\/admin\/webhooks"/);
    assert.match((await app.inject({ url: '/', headers: admin })).body, /href="\/admin\/webhooks"/);
  });

  test('a refused URL shows the reason, keeps what was typed, and adds nothing', async () => {
    const r = await app.inject({ method: 'POST', url: '/admin/webhooks', headers: { ...admin, ...form }, payload: encode({ url: 'http://169.254.169.254/latest', events: 'machine.enrolled', secret: SECRET }) });
    assert.equal(r.statusCode, 400);
    assert.match(r.body, /link-local or cloud metadata address/);
    assert.match(r.body, /value="http:\/\/169\.254\.169\.254\/latest"/);
    assert.equal((await t.ctx.webhooks.list()).length, 0);
  });

  test('add, see deliveries, disable, redeliver, remove', async () => {
    const add = await app.inject({ method: 'POST', url: '/admin/webhooks', headers: { ...admin, ...form }, payload: encode({ url: 'https://hooks.example.com/metal', events: 'machine.enrolled, build.*', secret: SECRET }) });
    assert.equal(add.statusCode, 303);
    assert.equal(add.headers.location, '/admin/webhooks?notice=created');
    const [hook] = await t.ctx.webhooks.list();
    assert.deepEqual(hook!.events, ['machine.enrolled', 'build.*']);
    await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('PAGE01') });
    const page = await app.inject({ url: '/admin/webhooks?notice=created', headers: admin });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /Webhook added\./);
    assert.match(page.body, /https:\/\/hooks\.example\.com\/metal/);
    assert.match(page.body, /<td class="mono">machine\.enrolled<\/td><td>pending<\/td>/);
    assert.equal(page.body.includes(SECRET), false, 'the secret is never shown');
    const off = await app.inject({ method: 'POST', url: `/admin/webhooks/${hook!.id}/disable`, headers: { ...admin, ...form }, payload: '' });
    assert.equal(off.statusCode, 303);
    assert.equal((await t.ctx.storage.webhooks.get(hook!.id))!.enabled, false);
    const [delivery] = (await t.ctx.storage.webhooks.deliveries(hook!.id, 1, 0)).items;
    const again = await app.inject({ method: 'POST', url: `/admin/webhooks/${hook!.id}/deliveries/${delivery!.id}/redeliver`, headers: { ...admin, ...form }, payload: '' });
    assert.equal(again.statusCode, 303);
    assert.equal((await t.ctx.storage.webhooks.deliveries(hook!.id, 10, 0)).total, 2);
    const bad = await app.inject({ method: 'POST', url: '/admin/webhooks/abc/delete', headers: { ...admin, ...form }, payload: '' });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.body, /webhook id must be a number/);
    const rm = await app.inject({ method: 'POST', url: `/admin/webhooks/${hook!.id}/delete`, headers: { ...admin, ...form }, payload: '' });
    assert.equal(rm.statusCode, 303);
    assert.equal((await t.ctx.webhooks.list()).length, 0);
  });
});
