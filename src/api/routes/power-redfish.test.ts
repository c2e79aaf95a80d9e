import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../../server/roles.ts';
import { freshSqlite } from '../../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../../test/support/context.ts';
import { ProcessMachine } from '../../../test/support/power/process-machine.ts';
import { startRedfishTestServer, type RedfishTestServer } from '../../../test/support/power/redfish-test-server.ts';
import { createSelfSignedCertificate, opensslSkipReason, type TestCertificate } from '../../../test/support/power/self-signed-cert.ts';

const skip = opensslSkipReason();
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const operator = { 'x-test-role': 'operator' };

describe('power API against the Redfish test server (HTTPS, self-signed certificate)', { skip, timeout: 90_000 }, () => {
  let t: TestContext;
  let app: FastifyInstance;
  let server: RedfishTestServer;
  let cert: TestCertificate;
  const machine = new ProcessMachine(() => ['sleep', '600']);
  const setBmc = (extra: Record<string, unknown>) =>
    app.inject({ method: 'PUT', url: '/api/v1/machines/RF1/bmc', headers: operator, payload: { type: 'redfish', address: `127.0.0.1:${server.port}`, username: 'root', password: PASSWORD, ...extra } });
  const act = (action: string, extra: Record<string, unknown> = {}) => app.inject({ method: 'POST', url: '/api/v1/machines/RF1/power', headers: operator, payload: { action, ...extra } });

  before(async () => {
    cert = createSelfSignedCertificate();
    server = await startRedfishTestServer({ keyPem: cert.keyPem, certPem: cert.certPem, username: 'root', password: PASSWORD, machine });
    t = await createTestContext(freshSqlite(), { METAL_POWER_TIMEOUT: '5', METAL_POWER_POLL_INTERVAL: '0' }, undefined, {
      powerRunner: { retryDelayMs: 50, settleIntervalMs: 100, settleTimeoutMs: 5000 },
    });
    app = await buildApiServer(t.ctx);
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('RF1') })).statusCode, 201);
  });
  after(async () => {
    await machine.powerOff();
    await app?.close();
    await t?.close();
    await server?.close();
  });

  test('a self-signed certificate is refused by default, before any request reaches the BMC', async () => {
    assert.equal((await setBmc({})).statusCode, 200);
    const r = await act('status');
    assert.equal(r.statusCode, 502, r.body);
    assert.equal(r.json().error.code, 'bmc_tls_untrusted');
    assert.deepEqual(server.requests, []);
  });

  test('pinned: on with next boot PXE, cycle, off switch the machine; sessions are closed', async () => {
    assert.equal((await setBmc({ tls_fingerprint: cert.fingerprint256 })).statusCode, 200);
    const on = await act('on', { boot_device: 'pxe' });
    assert.deepEqual([on.statusCode, on.json().power_state], [200, 'on'], on.body);
    assert.ok(machine.isOn());
    assert.deepEqual(machine.boots, ['pxe']);
    const cycle = await act('cycle');
    assert.deepEqual([cycle.statusCode, cycle.json().power_state], [200, 'on'], cycle.body);
    const off = await act('off');
    assert.deepEqual([off.statusCode, off.json().power_state], [200, 'off'], off.body);
    assert.equal(machine.isOn(), false);
    assert.equal(server.openSessions(), 0);
  });

  test('a wrong pin is refused; verify_tls false accepts the certificate', async () => {
    const wrongPin = cert.fingerprint256.replace(/^../, cert.fingerprint256.startsWith('00') ? '11' : '00');
    assert.equal((await setBmc({ tls_fingerprint: wrongPin })).statusCode, 200);
    const before = server.requests.length;
    const refused = await act('status');
    assert.equal(refused.json().error?.code, 'bmc_tls_untrusted', refused.body);
    assert.equal(server.requests.length, before, 'nothing was sent to a BMC with the wrong certificate');
    assert.equal((await setBmc({ verify_tls: false })).statusCode, 200);
    assert.deepEqual([(await act('status')).json().power_state], ['off']);
  });

  test('a wrong password is a 502 naming the BMC\'s answer', async () => {
    assert.equal((await setBmc({ verify_tls: false, password: 'not-it' })).statusCode, 200);
    const r = await act('on');
    assert.equal(r.statusCode, 502, r.body);
    assert.equal(r.json().error.code, 'bmc_auth_failed');
    assert.equal(machine.isOn(), false);
  });
});
