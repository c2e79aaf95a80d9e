import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BmcPassword } from '../bmc-target.ts';
import { PowerError, type PowerErrorKind } from '../power-error.ts';
import { PowerRunner } from '../power-runner.ts';
import { freeTcpPort } from '../../../test/support/power/free-port.ts';
import { createSelfSignedCertificate, opensslSkipReason } from '../../../test/support/power/self-signed-cert.ts';
import { RedfishDriver } from './redfish-driver.ts';

/** What each misbehaving HTTPS "BMC" sends, by request path. */
type Answer = { status: number; body: string; contentType?: string };
const ANSWERS: Record<string, Record<string, Answer>> = {
  html: { '/redfish/v1/Systems': { status: 200, body: '<html><body>Welcome to the web console</body></html>', contentType: 'text/html' } },
  array: { '/redfish/v1/Systems': { status: 200, body: '[1,2,3]' } },
  noMembers: { '/redfish/v1/Systems': { status: 200, body: '{"Members":[]}' } },
  foreignLink: { '/redfish/v1/Systems': { status: 200, body: '{"Members":[{"@odata.id":"https://evil.example/steal"}]}' } },
  traversal: { '/redfish/v1/Systems': { status: 200, body: '{"Members":[{"@odata.id":"/redfish/v1/../../etc/passwd"}]}' } },
  noPowerState: {
    '/redfish/v1/Systems': { status: 200, body: '{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}]}' },
    '/redfish/v1/Systems/1': { status: 200, body: '{"Id":"1"}' },
  },
  serverError: { '/redfish/v1/Systems': { status: 500, body: '{"error":{"code":"Base.1.8.InternalError","message":"The BMC is busy updating its firmware"}}' } },
};

const skip = opensslSkipReason();

describe('Redfish driver against BMCs that misbehave: a clean, named error every time, never a hang', { skip, timeout: 60_000 }, () => {
  const cert = skip ? undefined : createSelfSignedCertificate();
  let blackHole: TcpServer;
  let junk: TcpServer;
  const held: Socket[] = [];

  before(async () => {
    // Accepts connections and says nothing for 10 seconds: a black hole.
    blackHole = createTcpServer((socket) => {
      held.push(socket);
      socket.setTimeout(10_000, () => socket.destroy());
    });
    // Answers every connection with bytes that are neither TLS nor HTTP.
    junk = createTcpServer((socket) => {
      held.push(socket);
      socket.end(Buffer.from('\x00\xffgarbage garbage garbage\r\n\r\n'));
    });
    await Promise.all([blackHole, junk].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  });
  after(async () => {
    for (const s of held) s.destroy();
    await Promise.all([blackHole, junk].map((s) => new Promise((resolve) => s.close(resolve))));
  });

  const port = (s: { address(): AddressInfo | string | null }) => (s.address() as AddressInfo).port;
  const driverFor = (serverPort: number) =>
    new RedfishDriver(
      { type: 'redfish', address: { host: '127.0.0.1', port: serverPort }, username: 'root', password: new BmcPassword('calvin'), tls: { verify: false }, auth: 'basic' },
      { requestTimeoutMs: 10_000 },
    );

  /** An HTTPS "BMC" that sends the scenario's answers (404 `{}` for any other path). */
  async function withScenario(scenario: string, fn: (serverPort: number) => Promise<void>): Promise<void> {
    const server: HttpsServer = createHttpsServer({ key: cert!.keyPem, cert: cert!.certPem }, (req, res) => {
      const answer = ANSWERS[scenario]?.[(req.url ?? '').replace(/\/$/, '')];
      res.writeHead(answer?.status ?? 404, { 'content-type': answer?.contentType ?? 'application/json' });
      res.end(answer?.body ?? '{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await fn(port(server));
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  const expectFailure = async (driver: RedfishDriver, kind: PowerErrorKind, message: RegExp) => {
    await assert.rejects(driver.status({ signal: AbortSignal.timeout(10_000) }), (err: unknown) => {
      assert.ok(err instanceof PowerError, String(err));
      assert.equal(err.kind, kind);
      assert.match(err.message, message);
      return true;
    });
  };

  const cases: Array<[string, string, PowerErrorKind, RegExp]> = [
    ['an HTML page instead of JSON', 'html', 'bad_answer', /answered 200 with something that is not a JSON object: <html><body>Welcome/],
    ['a JSON array instead of an object', 'array', 'bad_answer', /not a JSON object/],
    ['a Systems collection with no member', 'noMembers', 'bad_answer', /lists no computer system/],
    ['a link to another host is reduced to its path, which is then not Redfish', 'foreignLink', 'bad_answer', /a link that is not a Redfish path: https:\/\/evil\.example\/steal/],
    ['a link with ..', 'traversal', 'bad_answer', /a link that is not a Redfish path/],
    ['a system without PowerState', 'noPowerState', 'bad_answer', /without a PowerState/],
    ['a 500 with a Redfish error', 'serverError', 'bmc_failed', /failed \(HTTP 500: The BMC is busy updating its firmware\)/],
  ];
  for (const [name, scenario, kind, message] of cases) {
    test(name, () => withScenario(scenario, (serverPort) => expectFailure(driverFor(serverPort), kind, message)));
  }

  test('bytes that are not TLS', () => expectFailure(driverFor(port(junk)), 'bad_answer', /did not answer HTTPS properly \(ERR_SSL_WRONG_VERSION_NUMBER/));

  test('nothing listening is unreachable', async () => {
    const closed = await freeTcpPort();
    await expectFailure(driverFor(closed), 'unreachable', /unreachable \(ECONNREFUSED\)/);
  });

  test('a 10-second black hole is a timeout at the call limit (retried once), not a hung request', async () => {
    const steps: string[] = [];
    const runner = new PowerRunner({ concurrency: 2, callTimeoutMs: 1000, retryDelayMs: 10, onStep: (s) => steps.push(`${s.step}:${s.outcome}:${s.code ?? ''}`) });
    await assert.rejects(runner.run(driverFor(port(blackHole)), { action: 'status' }), (err: unknown) => {
      assert.ok(err instanceof PowerError);
      assert.equal(err.kind, 'timeout');
      assert.equal(err.code, 'bmc_timeout');
      return true;
    });
    assert.deepEqual(steps, ['status:failed:bmc_timeout', 'status:failed:bmc_timeout']);
  });
});
