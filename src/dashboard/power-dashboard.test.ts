import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../server/roles.ts';
import { FakePowerDriver } from '../power/fake/fake-driver.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import { freshSqlite } from '../../test/support/databases.ts';

const operator = { 'x-test-role': 'operator' };
const viewer = { 'x-test-role': 'viewer' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const encode = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('dashboard power badge and buttons', { timeout: 60_000 }, () => {
  let t: TestContext;
  let app: FastifyInstance;
  const bmc = new FakePowerDriver({ name: 'dash', state: 'off' });

  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_POWER_POLL_INTERVAL: '0' }, undefined, {
      powerDriver: () => bmc,
      powerRunner: { retryDelayMs: 10, settleIntervalMs: 10, settleTimeoutMs: 200 },
    });
    app = await buildApiServer(t.ctx);
    for (const tag of ['DASHPWR', 'DASHNOBMC']) {
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) })).statusCode, 201);
    }
    const r = await app.inject({ method: 'PUT', url: '/api/v1/machines/DASHPWR/bmc', headers: operator, payload: { type: 'ipmi', address: '10.0.0.30', username: 'admin', password: 'pw-dash-1' } });
    assert.equal(r.statusCode, 200, r.body);
  });
  after(async () => {
    await app?.close();
    await t?.close();
  });

  test('the list and the machine page show the power state; machines without a BMC say so', async () => {
    await t.ctx.power.act('DASHPWR', { action: 'status' }, { kind: 'system', name: 'system' });
    const list = await app.inject({ url: '/machines', headers: viewer });
    assert.equal(list.statusCode, 200);
    assert.match(list.body, /<th scope="col">Power<\/th>/);
    assert.match(list.body, /data-power="off"/);
    assert.match(list.body, /data-power="none"/);
    const page = await app.inject({ url: '/machines/DASHPWR', headers: viewer });
    assert.match(page.body, /class="badge power-off" data-power="off"/);
    assert.doesNotMatch(page.body, /Power on<\/button>/, 'viewers get no power buttons');
    const noBmc = await app.inject({ url: '/machines/DASHNOBMC', headers: operator });
    assert.doesNotMatch(noBmc.body, /Power on<\/button>/, 'no buttons without a BMC');
  });

  test('operators press Power on; off needs the confirmation box ticked; viewers cannot', async () => {
    const page = await app.inject({ url: '/machines/DASHPWR', headers: operator });
    assert.match(page.body, /Power on<\/button>/);
    assert.match(page.body, /<summary>Power off…<\/summary>/);

    const forged = await app.inject({ method: 'POST', url: '/machines/DASHPWR/power', headers: { ...viewer, ...form }, payload: encode({ action: 'on' }) });
    assert.equal(forged.statusCode, 403);
    assert.equal(bmc.state, 'off');

    const on = await app.inject({ method: 'POST', url: '/machines/DASHPWR/power', headers: { ...operator, ...form }, payload: encode({ action: 'on' }) });
    assert.equal(on.statusCode, 303, on.body);
    assert.equal(on.headers.location, '/machines/DASHPWR?notice=power');
    assert.equal(bmc.state, 'on');

    const unconfirmed = await app.inject({ method: 'POST', url: '/machines/DASHPWR/power', headers: { ...operator, ...form }, payload: encode({ action: 'off' }) });
    assert.equal(unconfirmed.statusCode, 400);
    assert.match(unconfirmed.body, /tick the confirmation box first/);
    assert.equal(bmc.state, 'on', 'not switched off without confirmation');

    const off = await app.inject({ method: 'POST', url: '/machines/DASHPWR/power', headers: { ...operator, ...form }, payload: encode({ action: 'off', confirm: 'yes' }) });
    assert.equal(off.statusCode, 303);
    assert.equal(bmc.state, 'off');
    const after = await app.inject({ url: '/machines/DASHPWR', headers: operator });
    assert.match(after.body, /data-power="off"/);
  });

  test('a BMC failure is shown on the page with the BMC\'s answer', async () => {
    bmc.failNext('auth_failed');
    const r = await app.inject({ method: 'POST', url: '/machines/DASHPWR/power', headers: { ...operator, ...form }, payload: encode({ action: 'status' }) });
    assert.equal(r.statusCode, 502);
    assert.match(r.body, /role="alert"|class="alert/);
    assert.doesNotMatch(r.body, /pw-dash-1/);
  });
});
