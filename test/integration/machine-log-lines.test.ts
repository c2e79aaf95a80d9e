import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { FakePowerDriver } from '../../src/power/fake/fake-driver.ts';
import { PowerPoller } from '../../src/power/power-poller.ts';
import { buildApiServer, startBuilder } from '../../src/server/roles.ts';
import { FIXTURES, enrollAndConfigure, nixBuildAvailable, requestBuild, uniqueConfig, waitForBuild } from '../support/builder.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';

// Issue 20: every log line about a machine names its service tag (field `service_tag` and the
// message) and, for a build, its id (field `build`). The server's logger writes to a stream here.

interface LogLine {
  level: number;
  msg: string;
  service_tag?: string;
  build?: number;
}

/** Every line the server logs, parsed. */
class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(JSON.parse(line) as LogLine);
    done();
  }
}

const operator = { 'x-test-role': 'operator' };
const WARN = 40;

describe('log lines about a machine', () => {
  const logs = new LogCapture();
  const bmc = new FakePowerDriver({ name: '10.0.0.31:623', state: 'off' });
  let t: TestContext;
  let app: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_NIX_ENTRY: FIXTURES.noBootJson, METAL_POWER_POLL_INTERVAL: '0', METAL_POWER_TIMEOUT: '0.3' }, undefined, {
      powerDriver: () => bmc,
      powerRunner: { retryDelayMs: 10, settleIntervalMs: 10, settleTimeoutMs: 200 },
      logger: pino({ level: 'debug' }, logs),
    });
    app = await buildApiServer(t.ctx);
  });
  after(async () => {
    await app.close();
    await t.close();
  });

  test('a power action and a power poll that fail: every power line names the machine', async () => {
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('LOGPWR1') })).statusCode, 201);
    const set = await app.inject({ method: 'PUT', url: '/api/v1/machines/LOGPWR1/bmc', headers: operator, payload: { type: 'ipmi', address: '10.0.0.31', username: 'admin', password: 'Log-Test-BMC-pw-1' } });
    assert.equal(set.statusCode, 200, set.body);
    const from = logs.lines.length;
    bmc.failNext('unreachable', 2);
    const on = await app.inject({ method: 'POST', url: '/api/v1/machines/LOGPWR1/power', headers: operator, payload: { action: 'on' } });
    assert.ok(on.statusCode >= 500, on.body);
    bmc.failNext('auth_failed');
    await new PowerPoller(t.ctx.powerRunner, t.ctx.power.pollerPorts(), { intervalMs: 60_000, logger: t.ctx.logger }).pollAll();

    const power = logs.lines.slice(from).filter((l) => l.msg.startsWith('power:'));
    const failures = power.filter((l) => l.level >= WARN);
    assert.ok(failures.length >= 4, `two failed tries of the action, the request's failure and a failed poll: ${JSON.stringify(power)}`);
    assert.ok(failures.some((l) => l.msg.startsWith('power: LOGPWR1 (fake 10.0.0.31:623) status failed: ')), 'the failed poll');
    assert.ok(failures.some((l) => l.msg.startsWith("power: LOGPWR1's BMC failed: ")), 'the failed request');
    for (const line of power) {
      assert.equal(line.service_tag, 'LOGPWR1', line.msg);
      assert.ok(line.msg.includes('LOGPWR1'), line.msg);
    }
  });

  test('a build that fails: every builder line names the machine and the build', { skip: !nixBuildAvailable(), timeout: 120_000 }, async () => {
    const builder = await startBuilder(t.ctx, { name: 'log-b1' });
    try {
      await enrollAndConfigure(app, 'LOGBLD1', 'log-01', uniqueConfig());
      const from = logs.lines.length;
      const id = await requestBuild(app, 'LOGBLD1');
      const build = await waitForBuild(t.ctx, id, undefined, 90_000);
      assert.equal(build.status, 'failed');
      const lines = logs.lines.slice(from).filter((l) => l.msg.startsWith('builder: build'));
      const failed = lines.find((l) => l.level === WARN && l.msg.startsWith(`builder: build ${id} of LOGBLD1 failed: `));
      assert.ok(failed, `a warning says why: ${JSON.stringify(lines)}`);
      assert.ok(lines.length >= 2, 'started and failed');
      for (const line of lines) {
        assert.equal(line.service_tag, 'LOGBLD1', line.msg);
        assert.equal(line.build, id, line.msg);
        assert.ok(line.msg.includes(`build ${id} of LOGBLD1`), line.msg);
      }
    } finally {
      await builder.stop();
    }
  });
});
