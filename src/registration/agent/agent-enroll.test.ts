import { buildBootServer } from '../../server/roles.ts';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createTestContext, type TestContext } from '../../../test/support/context.ts';
import { freshSqlite, testDatabaseKinds } from '../../../test/support/databases.ts';
import { copyFixture, findBusybox, makeBusyboxPath, makeToolPath, removeDir, runAgent, writeFile, type AgentRun } from './agent-runner.ts';

const busybox = findBusybox();
const TOKEN = 'enroll-token-0123456789abcdef';

describe('registration agent: enrolling over HTTP', { skip: !busybox }, () => {
  let bbPath: string;
  let curlPath: string;
  const cleanup: string[] = [];
  before(() => {
    bbPath = makeBusyboxPath(busybox!);
    curlPath = makeToolPath(['curl', 'jq']);
    cleanup.push(bbPath, curlPath);
  });
  after(() => cleanup.forEach(removeDir));

  /** Runs the agent on a copy of a fixture whose kernel command line carries `cmdlineExtra`. */
  async function enroll(
    fixture: string,
    cmdlineExtra: string,
    opts: { curl?: boolean; env?: Record<string, string>; edit?: (root: string) => void; consoles?: boolean } = {},
  ): Promise<AgentRun & { root: string }> {
    const root = copyFixture(fixture, `initrd=initrd console=ttyS0,115200 ${cmdlineExtra}`);
    cleanup.push(root);
    opts.edit?.(root);
    const path = [join(root, 'tools'), ...(opts.curl ? [curlPath] : []), bbPath];
    return { ...(await runAgent({ busybox: busybox!, root, path, env: opts.env, consoles: opts.consoles })), root };
  }

  async function printed(fixture: string): Promise<{ service_tag: string; hardware: unknown }> {
    const root = copyFixture(fixture);
    cleanup.push(root);
    const run = await runAgent({ busybox: busybox!, root, path: [join(root, 'tools'), bbPath], args: ['--print'] });
    return JSON.parse(run.stdout);
  }

  describe('against the boot server', async () => {
    for (const kind of await testDatabaseKinds()) {
      describe(kind.name, () => {
        let t: TestContext;
        let app: FastifyInstance;
        let url: string;
        before(async () => {
          t = await createTestContext(kind.fresh());
          app = await buildBootServer(t.ctx);
          await app.listen({ host: '127.0.0.1', port: 0 });
          url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1/enroll`;
        });
        after(async () => {
          await app.close();
          await t.close();
        });

        test('busybox wget: 201 and the hardware stored as collected; curl the second time: 200', async () => {
          const first = await enroll('dell-r740', `enrollment_url=${url}`);
          assert.equal(first.code, 0, first.stdout + first.stderr);
          assert.match(first.stdout, /metal-agent: service tag 7XK4Q53 from the DMI serial; primary MAC 24:6e:96:3a:5c:10 from /);
          assert.match(first.stdout, /metal-agent: ENROLLED: 7XK4Q53 \(new machine; machine \d+, status enrolled\)\n/);
          const machine = await t.ctx.machines.get('7XK4Q53');
          assert.equal(machine.mac_address, '24:6e:96:3a:5c:10');
          assert.deepEqual(machine.hardware, (await printed('dell-r740')).hardware);

          const again = await enroll('dell-r740', `enrollment_url=${url}`, { curl: true });
          assert.equal(again.code, 0, again.stdout + again.stderr);
          assert.match(again.stdout, new RegExp(`ENROLLED: 7XK4Q53 \\(known machine, hardware refreshed; machine ${machine.id}, status enrolled\\)`));
          assert.equal((await t.ctx.machines.list({ limit: 10, offset: 0 })).total, 1);
        });

        test('white box: enrolls under its UUID; quotes, backslashes and control characters stored exactly', async () => {
          const run = await enroll('whitebox-placeholder', `enrollment_url=${url}`);
          assert.equal(run.code, 0, run.stdout + run.stderr);
          const expected = await printed('whitebox-placeholder');
          const machine = await t.ctx.machines.get('a1b2c3d4-e5f6-4711-8899-aabbccddeeff');
          assert.deepEqual(machine.hardware, expected.hardware);
          assert.equal((machine.hardware as { bios: { version: string } }).bios.version, 'P3.30 "beta" \\ build\u001b7');
        });
      });
    }
  });

  describe('against a boot server with METAL_ENROLL_TOKEN set', () => {
    let t: TestContext;
    let app: FastifyInstance;
    let url: string;
    before(async () => {
      t = await createTestContext(freshSqlite(), { METAL_ENROLL_TOKEN: TOKEN });
      app = await buildBootServer(t.ctx);
      await app.listen({ host: '127.0.0.1', port: 0 });
      url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1/enroll`;
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('a wrong token is refused (401, asked again until METAL_AGENT_TIMEOUT, nothing stored); the right one enrolls', async () => {
      const wrong = await enroll('hpe-dl380', `enrollment_url=${url} metal.enroll_token=${TOKEN.toUpperCase()}`, { curl: true, env: { METAL_AGENT_TIMEOUT: '1' } });
      assert.equal(wrong.code, 1, wrong.stdout);
      assert.match(wrong.stdout, /ENROLLMENT REFUSED \(attempt 1\): HTTP 401 .*wrong enrollment token/);
      assert.match(wrong.stdout, /ENROLLMENT FAILED after \d+ attempts in \d+s \(METAL_AGENT_TIMEOUT=1\)/);
      assert.match(wrong.stdout, /NOT ENROLLED \(exit status 1\); this machine stays on/);
      assert.equal((await t.ctx.machines.list({ limit: 10, offset: 0 })).total, 0);
      const right = await enroll('hpe-dl380', `enrollment_url=${url} metal.enroll_token=${TOKEN}`);
      assert.equal(right.code, 0, right.stdout);
      assert.equal((await t.ctx.machines.get('CZJ9450B2K')).mac_address, '98:03:9b:6e:21:40');
    });
  });

  describe('against a recording server', () => {
    let server: Server;
    let base: string;
    let requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }>;
    let answers: Array<[number, unknown]>;
    before(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
          requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
          const [status, reply] = answers.shift() ?? [201, { id: 1, service_tag: 'x', status: 'enrolled' }];
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const reset = (...a: Array<[number, unknown]>) => {
      requests = [];
      answers = a;
    };

    for (const curl of [false, true]) {
      test(`${curl ? 'curl' : 'busybox wget'}: posts JSON to the URL with the enrollment token header`, async () => {
        reset();
        const run = await enroll('supermicro', `enrollment_url=${base}/api/v1/enroll metal.enroll_token=${TOKEN}`, { curl });
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.equal(requests.length, 1);
        const [r] = requests;
        assert.deepEqual([r!.method, r!.url], ['POST', '/api/v1/enroll']);
        assert.equal(r!.headers['content-type'], 'application/json');
        assert.equal(r!.headers['x-metal-enroll-token'], TOKEN);
        assert.equal(JSON.parse(r!.body).service_tag, 'S348290X9A25847');
      });

      test(`${curl ? 'curl' : 'busybox wget'}: retries after ${curl ? '503' : '503 and 429'}, then succeeds`, async () => {
        const unavailable: [number, unknown] = [503, { error: { code: 'unavailable', message: 'starting' } }];
        const limited: [number, unknown] = [429, { error: { code: 'rate_limited', message: 'slow down' } }];
        if (curl) reset(unavailable);
        else reset(unavailable, limited);
        const run = await enroll('hpe-dl380', `enrollment_url=${base}/api/v1/enroll`, { curl });
        assert.equal(run.code, 0, run.stdout + run.stderr);
        assert.equal(requests.length, curl ? 2 : 3);
        const retries = curl ? /attempt 1: HTTP 503; retrying in 1s\n/ : /attempt 1: HTTP 503; retrying in 1s\n.*attempt 2: HTTP 429; retrying in 2s\n/s;
        assert.match(run.stdout, retries);
        assert.match(run.stdout, /ENROLLED: CZJ9450B2K \(new machine/);
        assert.equal(requests[0]!.headers['x-metal-enroll-token'], undefined, 'no token on the command line: no header');
      });

      test(`${curl ? 'curl' : 'busybox wget'}: a refusal is printed on every console and asked again with backoff until the server accepts`, async () => {
        const refusal: [number, unknown] = [400, { error: { code: 'invalid_input', message: 'service_tag is invalid' } }];
        reset(refusal, refusal);
        const run = await enroll('dell-r740', `enrollment_url=${base}/api/v1/enroll console=tty0 console=ttyS1,115200 metal.after=reboot`, {
          curl,
          consoles: true,
          edit: (root) => ['ttyS0', 'ttyS1', 'console'].forEach((c) => writeFile(join(root, 'dev', c), '')),
        });
        assert.equal(run.code, 0, run.stdout);
        assert.equal(requests.length, 3);
        assert.match(run.stdout, /ENROLLMENT REFUSED \(attempt 1\): HTTP 400 .*; retrying in 1s\n.*ENROLLMENT REFUSED \(attempt 2\): HTTP 400 .*; retrying in 2s\n.*ENROLLED: /s);
        if (curl) assert.match(run.stdout, /service_tag is invalid/, 'curl keeps the error body');
        for (const c of ['ttyS0', 'ttyS1']) {
          const console = readFileSync(join(run.root, 'dev', c), 'utf8');
          assert.match(console, /ENROLLMENT REFUSED \(attempt 2\)/, c);
          assert.match(console, /enrolled; rebooting \(metal\.after=reboot\)/, c);
        }
        assert.equal(readFileSync(join(run.root, 'dev', 'console'), 'utf8'), '', 'the consoles of the kernel line, not /dev/console again');
      });
    }

    test('terminal escapes in a serial reach the console as ?, and the JSON as they are', async () => {
      reset();
      const serial = 'SN\u001b[2J\u0007X';
      const run = await enroll('whitebox-placeholder', `enrollment_url=${base}/api/v1/enroll`, {
        edit: (root) => writeFile(join(root, 'sys/class/dmi/id/product_serial'), serial),
      });
      assert.equal(run.code, 0, run.stdout);
      assert.match(run.stdout, /from the SMBIOS UUID \(serial SN\?\[2J\?X is not usable\)/);
      assert.ok([...run.stdout].every((c) => c === '\n' || c.charCodeAt(0) >= 0x20), 'no control characters but newlines on the console');
      assert.equal(JSON.parse(requests[0]!.body).hardware.serial, serial);
    });

    test('nobody listening: retries with backoff until METAL_AGENT_TIMEOUT, then fails', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const run = await enroll('dell-r740', `enrollment_url=http://127.0.0.1:${port}/api/v1/enroll`, { env: { METAL_AGENT_TIMEOUT: '1' } });
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, /attempt 1: .*; retrying in 1s\n/);
      assert.match(run.stdout, /ENROLLMENT FAILED after \d+ attempts in \d+s/);
    });

    test('metal.after: reboot, poweroff, hold; poweroff when absent or unknown; metal.agent_stay holds', async () => {
      const cases: Array<[string, RegExp]> = [
        ['metal.after=reboot', /enrolled; rebooting \(metal\.after=reboot\)/],
        ['metal.after=poweroff', /enrolled; powering off \(metal\.after=poweroff\)/],
        ['metal.after=hold', /enrolled; staying on \(metal\.after=hold\)/],
        ['', /enrolled; powering off \(metal\.after=poweroff\)/],
        ['metal.after=explode', /metal\.after=explode is not reboot, poweroff or hold; powering off/],
        ['metal.after=reboot metal.agent_stay', /enrolled; staying on \(metal\.after=hold\)/],
      ];
      for (const [extra, message] of cases) {
        reset();
        const run = await enroll('supermicro', `enrollment_url=${base}/api/v1/enroll ${extra}`);
        assert.equal(run.code, 0, run.stdout);
        assert.match(run.stdout, message, extra);
      }
    });

    test('a URL nobody answers, with no METAL_AGENT_TIMEOUT: still trying, never powered off', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const root = copyFixture('dell-r740', `enrollment_url=http://127.0.0.1:${port}/api/v1/enroll`);
      cleanup.push(root);
      // Killed by the runner's timeout while it retries: an agent that gave up would have exited.
      await assert.rejects(runAgent({ busybox: busybox!, root, path: [join(root, 'tools'), bbPath], timeoutMs: 8000 }), /agent did not finish \(SIGTERM\).*attempt 1: .*retrying in 1s/s);
    });

    test('no enrollment_url, a URL that is not plain http, or a malformed token: exit 2, nothing sent', async () => {
      reset();
      for (const extra of ['quiet', 'enrollment_url=http://127.0.0.1:1/$(reboot)', 'enrollment_url=file:///etc/shadow', `enrollment_url=${base}/api/v1/enroll metal.enroll_token=a'b`]) {
        const run = await enroll('dell-r740', extra);
        assert.equal(run.code, 2, `${extra}: ${run.stdout}`);
        assert.match(run.stdout, /metal-agent: (no enrollment_url|enrollment_url is not a plain|metal.enroll_token is malformed)/);
      }
      assert.equal(requests.length, 0);
    });
  });
});
