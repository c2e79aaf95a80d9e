import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApiServer } from '../../server/roles.ts';
import { freshSqlite } from '../../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../../test/support/context.ts';
import { watchCommandLines } from '../../../test/support/power/cmdline-watch.ts';
import { ipmiSimSkipReason, startIpmiSimulator, type IpmiSimulator } from '../../../test/support/power/ipmi-simulator.ts';

const skip = ipmiSimSkipReason();
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const operator = { 'x-test-role': 'operator', 'content-type': 'application/json' };

class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    done();
  }
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('power API against OpenIPMI ipmi_sim over real HTTP (power follows a real process)', { skip, timeout: 120_000 }, () => {
  let sim: IpmiSimulator;
  let t: TestContext;
  let app: FastifyInstance;
  let base: string;
  let blackHole: Socket;
  let garbage: Socket;
  const logs = new LogCapture();
  const bodies: string[] = [];

  /** One real HTTP request with a time limit; the body is kept to look for the password. */
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: { [k: string]: unknown } & { error?: { code: string; message: string } } }> {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? { 'x-test-role': 'operator' } : operator,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    bodies.push(text);
    return { status: res.status, json: text ? JSON.parse(text) : {} };
  }

  before(async () => {
    sim = await startIpmiSimulator({ password: PASSWORD, machine: ['sleep', '600'] });
    blackHole = createSocket('udp4');
    garbage = createSocket('udp4');
    garbage.on('message', (_msg, rinfo) => garbage.send(randomBytes(40), rinfo.port, rinfo.address));
    await Promise.all([blackHole, garbage].map((s) => new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))));
    t = await createTestContext(freshSqlite(), { METAL_POWER_TIMEOUT: '3', METAL_POWER_POLL_INTERVAL: '0' }, undefined, {
      powerRunner: { retryDelayMs: 50, settleIntervalMs: 200, settleTimeoutMs: 8000 },
      logger: pino({ level: 'debug' }, logs),
    });
    app = await buildApiServer(t.ctx);
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    for (const tag of ['SIM1', 'HOLE1', 'JUNK1']) {
      const r = await fetch(`${base}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload(tag)) });
      assert.equal(r.status, 201);
    }
    const set = await call('PUT', '/api/v1/machines/SIM1/bmc', { type: 'ipmi', address: `127.0.0.1:${sim.port}`, username: 'admin', password: PASSWORD });
    assert.equal(set.status, 200, JSON.stringify(set.json));
  });
  after(async () => {
    await app?.close();
    await t?.close();
    await sim?.stop();
    blackHole?.close();
    garbage?.close();
  });

  test('status, on, cycle, off through the API change the simulator; the password is on no command line during any call', async () => {
    const act = async (action: string) => {
      const seen = await watchCommandLines(call('POST', '/api/v1/machines/SIM1/power', { action }), PASSWORD, 'ipmitool');
      assert.equal(seen.result.status, 'fulfilled');
      assert.deepEqual(seen.leaked, [], `${action}: the password was on a command line`);
      assert.ok(seen.watched.some((line) => line.includes(' -E ')), `${action}: ipmitool ran, with -E`);
      const response = (seen.result as PromiseFulfilledResult<Awaited<ReturnType<typeof call>>>).value;
      assert.equal(response.status, 200, `${action}: ${JSON.stringify(response.json)}`);
      return response.json;
    };
    assert.equal((await act('status')).power_state, 'off');
    assert.equal(sim.machinePid(), undefined);

    assert.equal((await act('on')).power_state, 'on');
    const firstPid = sim.machinePid();
    assert.ok(firstPid, 'power on started the machine process');
    assert.deepEqual((await call('GET', '/api/v1/machines/SIM1/power')).json.power_state, 'on');

    assert.equal((await act('cycle')).power_state, 'on');
    await until('the cycle to restart the machine process', () => {
      const pid = sim.machinePid();
      return pid !== undefined && pid !== firstPid;
    });

    assert.equal((await act('off')).power_state, 'off');
    assert.equal(sim.machinePid(), undefined, 'power off stopped the machine process');
    assert.equal((await call('GET', '/api/v1/machines/SIM1/power')).json.power_state, 'off');
  });

  test('a wrong password is a 502 naming the BMC\'s answer; the machine is untouched', async () => {
    const wrong = `wrong-${randomBytes(4).toString('hex')}`;
    assert.equal((await call('PUT', '/api/v1/machines/SIM1/bmc', { type: 'ipmi', address: `127.0.0.1:${sim.port}`, username: 'admin', password: wrong })).status, 200);
    const seen = await watchCommandLines(call('POST', '/api/v1/machines/SIM1/power', { action: 'on' }), wrong, 'ipmitool');
    assert.deepEqual(seen.leaked, []);
    const r = (seen.result as PromiseFulfilledResult<Awaited<ReturnType<typeof call>>>).value;
    assert.equal(r.status, 502);
    assert.equal(r.json.error?.code, 'bmc_auth_failed');
    assert.match(r.json.error?.message ?? '', new RegExp(`^ipmi: 127\\.0\\.0\\.1:${sim.port} refused the user name or password \\(RAKP 2 HMAC is invalid\\)`));
    assert.equal(sim.machinePid(), undefined, 'still off');
    const failed = await t.ctx.storage.events.list({ kind: 'power.failed' });
    assert.equal((failed.items[0]!.data as { code: string }).code, 'bmc_auth_failed');
    assert.ok(!JSON.stringify(failed.items).includes(wrong));
    assert.ok(!bodies.join('\n').includes(wrong) && !logs.lines.join('\n').includes(wrong));
    assert.equal((await call('PUT', '/api/v1/machines/SIM1/bmc', { type: 'ipmi', address: `127.0.0.1:${sim.port}`, username: 'admin', password: PASSWORD })).status, 200);
  });

  test('a silent BMC is a 504 after the call limit and its retry, not a hung request; one answering garbage is a clean BMC error', async () => {
    assert.equal((await call('PUT', '/api/v1/machines/HOLE1/bmc', { type: 'ipmi', address: `127.0.0.1:${blackHole.address().port}`, username: 'admin', password: PASSWORD })).status, 200);
    const hole = await call('POST', '/api/v1/machines/HOLE1/power', { action: 'status' });
    assert.equal(hole.status, 504, JSON.stringify(hole.json));
    assert.equal(hole.json.error?.code, 'bmc_timeout');

    assert.equal((await call('PUT', '/api/v1/machines/JUNK1/bmc', { type: 'ipmi', address: `127.0.0.1:${garbage.address().port}`, username: 'admin', password: PASSWORD })).status, 200);
    const junk = await call('POST', '/api/v1/machines/JUNK1/power', { action: 'on' });
    // ipmitool needs a while to give up on garbage: within the 3 s call limit it is a timeout, else "no IPMI answer".
    assert.ok(junk.status === 502 || junk.status === 504, JSON.stringify(junk.json));
    assert.match(junk.json.error?.code ?? '', /^bmc_(unreachable|timeout)$/);
    assert.match(junk.json.error?.message ?? '', /^ipmi: no (IPMI )?answer from 127\.0\.0\.1:\d+/);
    assert.deepEqual((await call('GET', '/api/v1/machines/JUNK1/power')).json, { power_state: 'unknown', checked_at: null }, 'nothing else changed');
  });

  test('the password is in no event, answer or log line', async () => {
    const events = await t.ctx.storage.events.list({ limit: 1000 });
    assert.ok(events.items.some((e) => e.kind === 'power.action'));
    for (const [what, text] of [['events', JSON.stringify(events.items)], ['answers', bodies.join('\n')], ['logs', logs.lines.join('\n')]] as const) {
      assert.ok(!text.includes(PASSWORD), `the password is in the ${what}`);
    }
    assert.ok(logs.lines.some((l) => l.includes('power: SIM1 (ipmi 127.0.0.1:')), 'the runner logged its BMC calls, naming the machine');
  });
});
