import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApiServer, startPowerControl, type RunningPowerControl } from '../../server/roles.ts';
import { describeAddress, type BmcTarget } from '../../power/bmc-target.ts';
import { FakePowerDriver } from '../../power/fake/fake-driver.ts';
import { testDatabaseKinds } from '../../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, sqlOf, type TestContext } from '../../../test/support/context.ts';
import { pollUntil } from '../../../test/support/poll.ts';

const viewer = { 'x-test-role': 'viewer' };
const operator = { 'x-test-role': 'operator' };
const admin = { 'x-test-role': 'admin' };
const PASSWORD = 'Sup3r-Secret-BMC-pw';
const SET_PASSWORD = 'Shared-Rack-pw-42';

/** Every log line the server writes, at debug level and without redaction, to check for passwords. */
class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    done();
  }
}

for (const kind of await testDatabaseKinds()) {
  describe(`power API on ${kind.name} (fake BMCs)`, { timeout: 60_000 }, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let control: RunningPowerControl;
    const logs = new LogCapture();
    /** One fake BMC per address; every target handed to a driver is kept to check its credentials. */
    const fakes = new Map<string, FakePowerDriver>();
    const targets: BmcTarget[] = [];
    const fake = (address: string) => {
      if (!fakes.has(address)) fakes.set(address, new FakePowerDriver({ name: address }));
      return fakes.get(address)!;
    };
    const responses: string[] = [];
    const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) => {
      const r = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
      responses.push(r.body);
      return r;
    };
    const eventsOf = async (tag: string) => (await call('GET', `/api/v1/machines/${tag}/events?limit=200`, viewer)).json().items as Array<{ kind: string; actor: string; message: string; data: unknown }>;

    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_POWER_TIMEOUT: '0.3', METAL_POWER_POLL_INTERVAL: '0' }, undefined, {
        powerDriver: (target) => {
          targets.push(target);
          return fake(describeAddress(target.address));
        },
        powerRunner: { retryDelayMs: 10, settleIntervalMs: 10, settleTimeoutMs: 200 },
        logger: pino({ level: 'debug' }, logs),
      });
      app = await buildApiServer(t.ctx);
      control = startPowerControl(t.ctx);
      for (const tag of ['PWR1', 'PWR2', 'PWR3']) {
        const r = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) });
        assert.equal(r.statusCode, 201);
      }
    });
    after(async () => {
      await control?.stop();
      await app?.close();
      await t?.close();
    });

    test('PUT /bmc stores the BMC with the password sealed; no answer carries it; viewers may read, not write', async () => {
      const denied = await call('PUT', '/api/v1/machines/PWR1/bmc', viewer, { type: 'ipmi', address: '10.0.0.21', username: 'admin', password: PASSWORD });
      assert.equal(denied.statusCode, 403);
      const r = await call('PUT', '/api/v1/machines/PWR1/bmc', operator, { type: 'ipmi', address: '10.0.0.21', username: 'admin', password: PASSWORD });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), {
        type: 'ipmi',
        address: '10.0.0.21:623',
        username: 'admin',
        credential_set: null,
        verify_tls: true,
        tls_fingerprint: null,
        tls_ca_bundle: null,
        auth: 'session',
        system_id: null,
        reboot_on_publish: false,
        power_state: 'unknown',
        checked_at: null,
      });
      const read = await call('GET', '/api/v1/machines/PWR1/bmc', viewer);
      assert.equal(read.statusCode, 200);
      assert.equal(read.json().address, '10.0.0.21:623');
      const row = await sqlOf(t.ctx).selectFrom('machine_power').selectAll().executeTakeFirstOrThrow();
      assert.ok(row.bmc_password_sealed?.startsWith('v1:'), 'sealed by the secret box');
      assert.ok(!JSON.stringify(row).includes(PASSWORD), 'the database row does not hold the password in clear');
      const none = await call('GET', '/api/v1/machines/PWR2/bmc', viewer);
      assert.equal(none.statusCode, 404);
      assert.match(none.json().error.message, /PWR2 has no BMC/);
    });

    test('POST /power acts through the BMC and answers with the state after it; GET /power shows it; each action is an event with who asked', async () => {
      const bmc = fake('10.0.0.21:623');
      assert.deepEqual((await call('GET', '/api/v1/machines/PWR1/power', viewer)).json(), { power_state: 'unknown', checked_at: null });
      const on = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'on', boot_device: 'pxe' });
      assert.equal(on.statusCode, 200, on.body);
      assert.equal(on.json().power_state, 'on');
      assert.ok(!Number.isNaN(Date.parse(on.json().checked_at)));
      assert.equal(bmc.state, 'on');
      assert.equal(bmc.pxeBoots, 1, 'next boot PXE was set before power on');
      assert.equal(targets.at(-1)!.password.reveal(), PASSWORD, 'the driver got the stored password');
      assert.deepEqual((await call('GET', '/api/v1/machines/PWR1/power', viewer)).json(), on.json());

      const off = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'off' });
      assert.deepEqual([off.statusCode, off.json().power_state, bmc.state], [200, 'off', 'off']);
      const cycle = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'cycle' });
      assert.deepEqual([cycle.statusCode, cycle.json().power_state, bmc.state], [200, 'on', 'on']);
      const status = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      assert.equal(status.json().power_state, 'on');

      const actions = (await eventsOf('PWR1')).filter((e) => e.kind === 'power.action');
      assert.equal(actions.length, 4);
      assert.equal(actions[0]!.actor, 'user:test-operator');
      assert.match(actions.at(-1)!.message, /PWR1: power on \(next boot pxe\) through ipmi 10\.0\.0\.21:623: the machine is on/);
      const data = actions.at(-1)!.data as { steps: Array<{ step: string }> };
      assert.deepEqual(data.steps.map((s) => s.step).slice(0, 3), ['status', 'set_boot_pxe', 'power_on']);
    });

    test('viewers cannot act: 403 and the BMC is not called', async () => {
      const bmc = fake('10.0.0.21:623');
      const calls = bmc.calls.length;
      const r = await call('POST', '/api/v1/machines/PWR1/power', viewer, { action: 'off' });
      assert.equal(r.statusCode, 403);
      assert.equal(bmc.calls.length, calls);
    });

    test('BMC failures: wrong credentials 502, a refusal 409, no answer 504, each with the BMC\'s answer and a power.failed event', async () => {
      const bmc = fake('10.0.0.21:623');
      bmc.failNext('auth_failed');
      const auth = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      assert.equal(auth.statusCode, 502);
      assert.equal(auth.json().error.code, 'bmc_auth_failed');
      assert.ok(auth.json().error.message.length > 0);

      bmc.state = 'off';
      const refused = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'reset' });
      assert.equal(refused.statusCode, 409);
      assert.equal(refused.json().error.code, 'bmc_refused');
      assert.match(refused.json().error.message, /cannot reset a machine that is off/);

      bmc.hangNext(2);
      const timeout = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      assert.equal(timeout.statusCode, 504, timeout.body);
      assert.equal(timeout.json().error.code, 'bmc_timeout');

      const failed = (await eventsOf('PWR1')).filter((e) => e.kind === 'power.failed');
      assert.deepEqual(
        failed.map((e) => (e.data as { code: string }).code),
        ['bmc_timeout', 'bmc_refused', 'bmc_auth_failed'],
      );
      assert.equal(failed[0]!.actor, 'user:test-operator');
    });

    test('bad input is a 4xx naming what is wrong, and changes nothing', async () => {
      const bmc = fake('10.0.0.21:623');
      const before = { calls: bmc.calls.length, bmc: (await call('GET', '/api/v1/machines/PWR1/bmc', viewer)).body, events: (await eventsOf('PWR1')).length };
      const cases: Array<[string, 'POST' | 'PUT', string, unknown, number, RegExp]> = [
        ['unknown action', 'POST', '/api/v1/machines/PWR1/power', { action: 'explode' }, 400, /action must be one of on, off, cycle, reset, status; got "explode"/],
        ['no action', 'POST', '/api/v1/machines/PWR1/power', {}, 400, /action must be one of/],
        ['a boot device with off', 'POST', '/api/v1/machines/PWR1/power', { action: 'off', boot_device: 'pxe' }, 400, /boot_device applies to on, cycle and reset/],
        ['an unknown boot device', 'POST', '/api/v1/machines/PWR1/power', { action: 'on', boot_device: 'cdrom' }, 400, /boot_device must be "pxe"/],
        ['a JSON array', 'POST', '/api/v1/machines/PWR1/power', [], 400, /invalid request|must be/],
        ['an unknown machine', 'POST', '/api/v1/machines/NOPE/power', { action: 'on' }, 404, /machine NOPE not found/],
        ['a machine without a BMC', 'POST', '/api/v1/machines/PWR2/power', { action: 'on' }, 409, /PWR2 has no BMC/],
        ['a URL with a path as address', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'redfish', address: 'https://10.0.0.5/redfish/v1', username: 'root', password: PASSWORD }, 400, /a URL with a path/],
        ['a URL for IPMI', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: 'https://10.0.0.5', username: 'root', password: PASSWORD }, 400, /an IPMI address is host\[:port\], not a URL/],
        ['plain http for Redfish', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'redfish', address: 'http://10.0.0.5', username: 'root', password: PASSWORD }, 400, /only https:\/\//],
        ['shell characters as address', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '-H;reboot', username: 'root', password: PASSWORD }, 400, /not a host name or IP address|expected host/],
        ['a bad port', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5:99999', username: 'root', password: PASSWORD }, 400, /port must be 1 to 65535/],
        ['an unknown type', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'amt', address: '10.0.0.5', username: 'root', password: PASSWORD }, 400, /type must be one of ipmi, redfish/],
        ['TLS settings for IPMI', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5', username: 'root', password: PASSWORD, verify_tls: false }, 400, /verify_tls applies to Redfish only/],
        ['a bad fingerprint', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'redfish', address: '10.0.0.5', username: 'root', password: PASSWORD, tls_fingerprint: 'abc' }, 400, /SHA-256 fingerprint/],
        ['reboot_on_publish not a boolean', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5', username: 'root', password: PASSWORD, reboot_on_publish: 'yes' }, 400, /reboot_on_publish must be true or false/],
        ['an unknown credential set', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5', credential_set: 'nope' }, 400, /credential set nope does not exist/],
        ['a credential set and a password', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5', credential_set: 'x', password: PASSWORD }, 400, /not both/],
        ['no address, none stored or reported', 'PUT', '/api/v1/machines/PWR3/bmc', { type: 'ipmi', username: 'root', password: PASSWORD }, 400, /address is required/],
        ['a password with a line break', 'PUT', '/api/v1/machines/PWR1/bmc', { type: 'ipmi', address: '10.0.0.5', username: 'root', password: 'a\nb' }, 400, /password is required: 1 to 256 characters, no line breaks/],
      ];
      for (const [what, method, url, payload, status, message] of cases) {
        const r = await call(method, url, operator, payload);
        assert.equal(r.statusCode, status, `${what}: ${r.body}`);
        assert.match(r.json().error.message, message, what);
        assert.ok(typeof r.json().error.code === 'string', what);
        assert.ok(!r.body.includes(PASSWORD), `${what}: the answer echoes the password`);
      }
      assert.equal(bmc.calls.length, before.calls, 'no BMC was called');
      assert.equal((await call('GET', '/api/v1/machines/PWR1/bmc', viewer)).body, before.bmc, 'the BMC settings did not change');
      assert.equal((await eventsOf('PWR1')).length, before.events, 'no event was recorded');
    });

    test('credential sets: admins create them, machines reference them, their password reaches the driver; in use they cannot be deleted', async () => {
      assert.equal((await call('POST', '/api/v1/bmc-credential-sets', operator, { name: 'rack-a', username: 'root', password: SET_PASSWORD })).statusCode, 403);
      const created = await call('POST', '/api/v1/bmc-credential-sets', admin, { name: 'rack-a', username: 'root', password: SET_PASSWORD });
      assert.equal(created.statusCode, 201, created.body);
      assert.deepEqual(Object.keys(created.json()).sort(), ['created_at', 'machines', 'name', 'updated_at', 'username']);
      assert.equal((await call('POST', '/api/v1/bmc-credential-sets', admin, { name: 'rack-a', username: 'x', password: 'y' })).statusCode, 409);
      assert.equal((await call('POST', '/api/v1/bmc-credential-sets', admin, { name: 'bad name!', username: 'x', password: 'y' })).statusCode, 400);

      const set = await call('PUT', '/api/v1/machines/PWR2/bmc', operator, { type: 'redfish', address: 'idrac-02.example.net', credential_set: 'rack-a', verify_tls: false });
      assert.equal(set.statusCode, 200, set.body);
      assert.deepEqual([set.json().credential_set, set.json().username, set.json().address], ['rack-a', 'root', 'idrac-02.example.net:443']);
      const on = await call('POST', '/api/v1/machines/PWR2/power', operator, { action: 'on' });
      assert.equal(on.statusCode, 200, on.body);
      const target = targets.at(-1)!;
      assert.deepEqual([target.type, target.username, target.password.reveal()], ['redfish', 'root', SET_PASSWORD]);

      const changed = await call('PUT', '/api/v1/bmc-credential-sets/rack-a', admin, { password: 'Rotated-pw-43' });
      assert.deepEqual([changed.statusCode, changed.json().machines], [200, 1]);
      await call('POST', '/api/v1/machines/PWR2/power', operator, { action: 'status' });
      assert.equal(targets.at(-1)!.password.reveal(), 'Rotated-pw-43', 'every machine of the set uses the new password');

      const list = await call('GET', '/api/v1/bmc-credential-sets', admin);
      assert.deepEqual(list.json().items.map((s: { name: string; machines: number }) => [s.name, s.machines]), [['rack-a', 1]]);
      const inUse = await call('DELETE', '/api/v1/bmc-credential-sets/rack-a', admin);
      assert.equal(inUse.statusCode, 409);
      assert.match(inUse.json().error.message, /used by 1 machine/);
    });

    test('the BMC address the registration agent reported fills in a missing address', async () => {
      const payload = enrollmentPayload('PWR4');
      (payload.hardware as Record<string, unknown>).bmc = { address: '10.0.9.4', mac: '0c:c4:7a:00:09:04' };
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload })).statusCode, 201);
      const r = await call('PUT', '/api/v1/machines/PWR4/bmc', operator, { type: 'ipmi', username: 'admin', password: PASSWORD });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().address, '10.0.9.4:623');
    });

    test('keeping the stored password: PUT without one changes the other settings only', async () => {
      const r = await call('PUT', '/api/v1/machines/PWR1/bmc', operator, { type: 'ipmi', address: '10.0.0.21' });
      assert.equal(r.statusCode, 200, r.body);
      await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      assert.deepEqual([targets.at(-1)!.username, targets.at(-1)!.password.reveal()], ['admin', PASSWORD]);
    });

    test('bulk power: one outcome per machine, through the one runner', async () => {
      const r = await call('POST', '/api/v1/machines/bulk', operator, { action: 'power', ids: ['PWR1', 'PWR2', 'PWR3', 'NOPE'], power: { action: 'off' } });
      assert.equal(r.statusCode, 200, r.body);
      const results = r.json().results as Array<{ id: string; ok: boolean; power_state?: string; status?: number; error?: { code: string } }>;
      assert.deepEqual(
        results.map((x) => [x.id, x.ok, x.power_state ?? x.error?.code, x.status ?? 200]),
        [
          ['PWR1', true, 'off', 200],
          ['PWR2', true, 'off', 200],
          ['PWR3', false, 'conflict', 409],
          ['NOPE', false, 'not_found', 404],
        ],
      );
      assert.equal((await call('POST', '/api/v1/machines/bulk', viewer, { action: 'power', ids: ['PWR1'], power: { action: 'on' } })).statusCode, 403);
      const bad = await call('POST', '/api/v1/machines/bulk', operator, { action: 'power', ids: ['PWR1'], power: { action: 'explode' } });
      assert.equal(bad.statusCode, 400);
      assert.equal(fake('10.0.0.21:623').state, 'off', 'a bad bulk request changes nothing');
    });

    test('reboot on publish: a published build sets next boot PXE and cycles its machine once, with an event per step', async () => {
      const r = await call('PUT', '/api/v1/machines/PWR1/bmc', operator, { type: 'ipmi', address: '10.0.0.21', reboot_on_publish: true });
      assert.equal(r.json().reboot_on_publish, true);
      const bmc = fake('10.0.0.21:623');
      bmc.state = 'on';
      const boots = bmc.pxeBoots;
      const machine = (await t.ctx.storage.machines.findByServiceTag('PWR1'))!;
      const { storage } = t.ctx;
      const build = await storage.builds.create({ machine_id: machine.id, config: '{}', hostname: 'pwr1', service_tag: 'PWR1', boot_token: 'tok', image_key: 'pwr1-image-key-0000000000' }, new Date().toISOString());
      t.ctx.notifier.emit('build.updated', build.id);
      await control.idle();
      assert.equal(bmc.pxeBoots, boots, 'a pending build reboots nothing');

      await storage.builds.transition(build.id, ['pending'], 'success', {}, new Date().toISOString());
      await storage.machines.update(machine.id, { image_build_id: build.id, status: 'ready' }, new Date().toISOString());
      t.ctx.notifier.emit('build.updated', build.id);
      t.ctx.notifier.emit('build.updated', build.id);
      await control.idle();
      assert.equal(bmc.pxeBoots, boots + 1, 'cycled once into PXE');
      assert.ok(bmc.calls.includes('cycle'));
      const events = (await eventsOf('PWR1')).reverse();
      const kinds = events.map((e) => e.kind);
      const start = kinds.indexOf('power.reboot_on_publish');
      assert.ok(start >= 0, 'the reboot is announced');
      const after = kinds.slice(start);
      assert.equal(after.at(-1), 'power.action');
      assert.ok(after.length >= 5, after.join(' '));
      assert.deepEqual(new Set(after.slice(1, -1)), new Set(['power.step']));
      const steps = events.filter((e) => e.kind === 'power.step').map((e) => e.message);
      assert.ok(steps.some((m) => /set_boot_pxe ok/.test(m)) && steps.some((m) => /power_cycle ok/.test(m)), steps.join('\n'));
      assert.equal(events.at(-1)!.actor, 'system');

      t.ctx.notifier.emit('build.updated', build.id);
      await control.idle();
      assert.equal(bmc.pxeBoots, boots + 1, 'a build reboots its machine at most once');
    });

    test('two actions on one machine at once run one after the other, never interleaved on its BMC', async () => {
      const bmc = fake('10.0.0.21:623');
      bmc.state = 'on';
      const start = bmc.calls.length;
      bmc.hangNext(1); // the first call of the first action waits for its time limit, then is retried
      const firstCall = call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      // The second is sent once the first holds the BMC, so which one runs first is not left to chance.
      await pollUntil('the first action reaches the BMC', () => bmc.calls.length !== start, { timeoutMs: 10_000, intervalMs: 5 });
      const [first, second] = await Promise.all([firstCall, call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'off' })]);
      assert.deepEqual([first.statusCode, first.json().power_state], [200, 'on'], first.body);
      assert.deepEqual([second.statusCode, second.json().power_state], [200, 'off'], second.body);
      assert.deepEqual(bmc.calls.slice(start, start + 4), ['status', 'status', 'status', 'off']);
    });

    test('a sealed password moved to another machine\'s row does not open there: 409, the BMC is not called', async () => {
      const db = sqlOf(t.ctx);
      const [one, four] = await Promise.all(['PWR1', 'PWR4'].map((tag) => t.ctx.storage.machines.findByServiceTag(tag)));
      const original = (await db.selectFrom('machine_power').select('bmc_password_sealed').where('machine_id', '=', one!.id).executeTakeFirstOrThrow()).bmc_password_sealed;
      const moved = (await db.selectFrom('machine_power').select('bmc_password_sealed').where('machine_id', '=', four!.id).executeTakeFirstOrThrow()).bmc_password_sealed;
      await db.updateTable('machine_power').set({ bmc_password_sealed: moved }).where('machine_id', '=', one!.id).execute();
      const calls = fake('10.0.0.21:623').calls.length;
      const r = await call('POST', '/api/v1/machines/PWR1/power', operator, { action: 'status' });
      assert.equal(r.statusCode, 409, r.body);
      assert.match(r.json().error.message, /does not open with this server's secret key/);
      assert.equal(fake('10.0.0.21:623').calls.length, calls);
      await db.updateTable('machine_power').set({ bmc_password_sealed: original }).where('machine_id', '=', one!.id).execute();
    });

    test('DELETE /bmc forgets it; the password is in no answer, event or log line', async () => {
      assert.equal((await call('DELETE', '/api/v1/machines/PWR1/bmc', operator)).statusCode, 204);
      assert.equal((await call('DELETE', '/api/v1/machines/PWR1/bmc', operator)).statusCode, 404);
      assert.deepEqual((await call('GET', '/api/v1/machines/PWR1/power', viewer)).json(), { power_state: 'unknown', checked_at: null });
      const events = await t.ctx.storage.events.list({ limit: 1000 });
      assert.ok(events.total > 10);
      const everything = [JSON.stringify(events.items), ...responses, ...logs.lines];
      for (const secret of [PASSWORD, SET_PASSWORD, 'Rotated-pw-43']) {
        const found = everything.filter((text) => text.includes(secret));
        assert.deepEqual(found, [], `the password ${secret} leaked`);
      }
      assert.ok(logs.lines.some((l) => l.includes('power: PWR1 (fake 10.0.0.21:623)') && JSON.parse(l).service_tag === 'PWR1'), 'the runner logged its steps, naming the machine');
    });
  });
}
