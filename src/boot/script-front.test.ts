import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createTestContext, enrollmentPayload, sqlOf, type TestContext } from '../../test/support/context.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { sampleValue } from '../../test/support/metrics.ts';
import { rawConnect, rawRequest, type RawResponse } from '../../test/support/raw-http.ts';
import type { AppContext } from '../server/context.ts';
import { buildBootServer } from '../server/roles.ts';
import { installScriptFront, parseHead, scanHead } from './script-front.ts';
import type { ScriptAnswers } from './script-routes.ts';
import { createLogger } from '../core/logger.ts';
import { pollUntil } from '../../test/support/poll.ts';

const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

function writeFiles(dir: string, bootJson: unknown): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'bzImage'), 'kernel');
  writeFileSync(join(dir, 'initrd'), 'initrd');
  writeFileSync(join(dir, 'boot.json'), JSON.stringify(bootJson));
}

/** A fleet with one machine of each kind: READY1 boots its image, WAIT1 has none, anything else registers. */
async function seed(ctx: AppContext): Promise<void> {
  writeFiles(ctx.images.registrationDir, { kernel_params: ['console=ttyS0'] });
  await ctx.machines.enroll(enrollmentPayload('WAIT1', { mac_address: '52:54:00:00:00:02' }), { kind: 'machine', name: 'WAIT1' });
  const { machine } = await ctx.machines.enroll(enrollmentPayload('READY1', { mac_address: '52:54:00:00:00:01' }), { kind: 'machine', name: 'READY1' });
  await ctx.machines.update('READY1', { hostname: 'ready-1', nixos_config: '{ ... }: { }' }, OPERATOR);
  const build = await ctx.machines.requestBuild('READY1', OPERATOR);
  writeFiles(ctx.images.buildDir(build.id), { init: '/nix/store/bbbb-nixos-system/init', kernel_params: ['console=ttyS0'] });
  const now = new Date().toISOString();
  await ctx.storage.builds.transition(build.id, ['pending'], 'success', { completed_at: now }, now);
  await sqlOf(ctx).updateTable('machines').set({ image_build_id: build.id, status: 'ready' }).where('id', '=', machine.id).execute();
  ctx.notifier.emit('machine.updated', machine.id);
}

function portOf(app: FastifyInstance): number {
  return (app.server.address() as AddressInfo).port;
}

/** What must match between the two paths: status, headers but the date, body with the per-boot token masked. */
function comparable(r: RawResponse) {
  return {
    status: r.status,
    headers: r.headers.filter(([name]) => name !== 'date'),
    body: r.body.replace(/metal\.boot_token=\S+/g, 'metal.boot_token=<token>'),
  };
}

const request = (method: string, target: string, headers = 'Host: boot\r\n') => `${method} ${target} HTTP/1.1\r\n${headers}\r\n`;

/** Request targets of every kind: scripts the front answers, and what it must leave to Fastify. */
const TARGETS = [
  '/boot.ipxe',
  '/boot.ipxe?anything=1',
  '/nixos/machines/READY1.ipxe',
  '/nixos/machines/READY1.ipxe?mac=52:54:00:00:00:01',
  '/nixos/machines/WAIT1.ipxe?mac=52:54:00:00:00:02&uuid=4c4c4544-0042-3510-8052-b3c04f4e3232',
  '/nixos/machines/NEW1.ipxe?mac=52-54-00-00-00-99',
  '/nixos/machines/To%20Be%20Filled%20By%20O.E.M..ipxe?mac=52:54:00:00:00:02',
  '/nixos/machines/Default-string.ipxe?mac=52:54:00:00:00:01',
  '/nixos/machines/READY1.ipxe?mac=a&mac=b',
  '/nixos/machines/READY1.ipxe?mac=%3Cscript%3E&uuid=%24%7Buuid%7D',
  '/nixos/machines/READY1.ipxe?mac=52:54:00:00:00:01+x',
  '/nixos/machines/%52EADY1.ipxe',
  '/nixos/machines/AB%ZZ.ipxe',
  '/nixos/machines/%2e%2e%2fetc%2fpasswd.ipxe',
  '/nixos/machines/READY1.txt',
  '/nixos/machines/',
  '/nixos/machines/.ipxe',
  '/nixos/machines/a/b.ipxe',
  '/nixos/machines/READY1.ipxe;x',
  `/nixos/machines/${'A'.repeat(1100)}.ipxe`,
  '/NIXOS/machines/READY1.ipxe',
  '/healthz',
  '/images/registration/initrd',
  '/nope',
];

describe('the lean front of the boot listener', () => {
  let t: TestContext;
  let front: FastifyInstance;
  let plain: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite());
    await seed(t.ctx);
    front = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    plain = await buildBootServer(t.ctx, { registrationTtlMs: 0, scriptFront: false });
    await front.listen({ host: '127.0.0.1', port: 0 });
    await plain.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await front.close();
    await plain.close();
    await t.close();
  });

  test('every request gets the same status, headers and body with the front as without it', async () => {
    for (const target of TARGETS) {
      for (const method of ['GET', 'HEAD']) {
        for (const headers of ['Host: boot\r\n', 'host: boot\r\nUser-Agent: iPXE/1.21.1\r\nConnection: keep-alive\r\n', 'Host: boot\r\nConnection: close\r\n']) {
          const raw = request(method, target, headers);
          const ours = await rawRequest(portOf(front), raw, method === 'HEAD');
          const theirs = await rawRequest(portOf(plain), raw, method === 'HEAD');
          assert.deepEqual(comparable(ours), comparable(theirs), `${method} ${target} with ${JSON.stringify(headers)}`);
        }
      }
    }
  });

  test('requests the front leaves alone get the HTTP server\'s own answers: no Host, a body, HTTP/1.0, an upgrade', async () => {
    const heads = [
      'GET /boot.ipxe HTTP/1.1\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nContent-Length: 3\r\n\r\nabc',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nX-Bad : value\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nX-Folded: a\r\n b\r\n\r\n',
      'POST /boot.ipxe HTTP/1.1\r\nHost: boot\r\nContent-Length: 0\r\n\r\n',
      'GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nX-Big: ' + 'x'.repeat(9000) + '\r\n\r\n',
    ];
    for (const raw of heads) {
      const ours = await rawRequest(portOf(front), raw);
      const theirs = await rawRequest(portOf(plain), raw);
      assert.deepEqual(comparable(ours), comparable(theirs), JSON.stringify(raw.slice(0, 120)));
    }
  });

  test('one kept-alive connection: scripts, then a request behind the front, then scripts again, all in order', async () => {
    const c = await rawConnect(portOf(front));
    try {
      c.send(request('GET', '/nixos/machines/READY1.ipxe'));
      const [first] = await c.responses(1);
      assert.match(first!.body, /metal\.boot_token=/);
      c.send(request('GET', '/nixos/machines/WAIT1.ipxe') + request('HEAD', '/boot.ipxe') + request('GET', '/nixos/machines/READY1.ipxe'));
      const pipelined = await c.responses(3, { head: [false, true, false] });
      assert.deepEqual(pipelined.map((r) => r.status), [200, 200, 200]);
      assert.match(pipelined[0]!.body, /has no image yet/);
      assert.equal(pipelined[1]!.body, '');
      assert.match(pipelined[2]!.body, /booting build/);
      c.send(request('GET', '/healthz') + request('GET', '/nixos/machines/WAIT1.ipxe'));
      const behind = await c.responses(2);
      assert.deepEqual(behind.map((r) => r.status), [200, 200]);
      assert.match(behind[1]!.body, /has no image yet/);
      c.send(request('GET', '/boot.ipxe'));
      assert.equal((await c.responses(1))[0]!.status, 200, 'the connection stays open');
    } finally {
      c.socket.destroy();
    }
  });

  test('a head that arrives in pieces is answered in full', async () => {
    const c = await rawConnect(portOf(front));
    try {
      c.send('GET /nixos/machines/READY1.ipxe HTTP/1.1\r\nHo');
      await new Promise((resolve) => setTimeout(resolve, 20));
      c.send('st: boot\r\n\r\n');
      const [r] = await c.responses(1);
      assert.equal(r!.status, 200);
      assert.match(r!.body, /booting build/);
    } finally {
      c.socket.destroy();
    }
  });

  test('Connection: close is answered, then the connection is closed', async () => {
    const c = await rawConnect(portOf(front));
    c.send(request('GET', '/nixos/machines/READY1.ipxe', 'Host: boot\r\nConnection: close\r\n'));
    const [r] = await c.responses(1);
    assert.equal(r!.status, 200);
    assert.deepEqual(r!.headers.find(([n]) => n === 'connection'), ['connection', 'close']);
    await c.closed();
  });

  test('answers by the front are counted as the hook counts them', async () => {
    const count = async (route: string, method: string, status: string) =>
      sampleValue(await t.ctx.metrics!.exposition(), 'metal_http_requests_total', { listener: 'boot', route, method, status }) ?? 0;
    const image = async () => sampleValue(await t.ctx.metrics!.exposition(), 'metal_boot_scripts_total', { kind: 'image' }) ?? 0;
    const before = { script: await count('/nixos/machines/:file', 'GET', '200'), head: await count('/boot.ipxe', 'HEAD', '200'), image: await image() };
    const c = await rawConnect(portOf(front));
    try {
      c.send(request('GET', '/nixos/machines/READY1.ipxe').repeat(3) + request('HEAD', '/boot.ipxe'));
      await c.responses(4, { head: [false, false, false, true] });
    } finally {
      c.socket.destroy();
    }
    assert.equal(await count('/nixos/machines/:file', 'GET', '200'), before.script + 3);
    assert.equal(await count('/boot.ipxe', 'HEAD', '200'), before.head + 1);
    assert.equal(await image(), before.image + 3);
  });

  test('an answer still being sent is never written over by the next one', async () => {
    const target = '/nixos/machines/READY1.ipxe';
    const expected = comparable(await rawRequest(portOf(front), request('GET', target)));
    // The server's side of the connection takes every answer but sends none until released, as a
    // socket does whose client stopped reading (its writes then wait, and writableLength says so).
    let release: (() => void) | undefined;
    const held: Array<Buffer | string> = [];
    const onConnection = (socket: Socket) => {
      const send = socket.write.bind(socket) as (chunk: Buffer | string) => boolean;
      let holding = true;
      Object.defineProperty(socket, 'writableLength', { get: () => (holding ? held.reduce((n, chunk) => n + chunk.length, 0) : 0) });
      socket.write = ((chunk: Buffer | string) => (holding ? held.push(chunk) > 0 : send(chunk))) as typeof socket.write;
      release = () => {
        holding = false;
        for (const chunk of held) send(chunk);
      };
    };
    front.server.on('connection', onConnection);
    try {
      const c = await rawConnect(portOf(front));
      const count = 5;
      c.send(request('GET', target).repeat(count));
      await pollUntil(`${count} answers written`, () => held.length >= count, { timeoutMs: 10_000, intervalMs: 5, state: () => held.length });
      release!();
      const answers = await c.responses(count);
      const tokens = new Set(answers.map((r) => /metal\.boot_token=(\S+)/.exec(r.body)?.[1]));
      for (const r of answers) assert.deepEqual(comparable(r), expected);
      assert.equal(tokens.size, count, 'each answer has a token of its own: none was written over by a later one');
      c.socket.destroy();
    } finally {
      front.server.off('connection', onConnection);
    }
  });

  test('each image script carries a fresh token, also when answered from memory', async () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const r = await rawRequest(portOf(front), request('GET', '/nixos/machines/READY1.ipxe'));
      tokens.add(/metal\.boot_token=(\S+)/.exec(r.body)![1]!);
    }
    assert.equal(tokens.size, 5);
  });
});

describe('lean front connections and closing', () => {
  test('an idle connection is closed after the keep-alive timeout, and closing the server does not wait for idle ones', async () => {
    const t = await createTestContext(freshSqlite());
    const app = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    try {
      app.server.keepAliveTimeout = 100;
      await app.listen({ host: '127.0.0.1', port: 0 });
      const idle = await rawConnect(portOf(app));
      idle.send(request('GET', '/boot.ipxe'));
      await idle.responses(1);
      await idle.closed(10_000);

      app.server.keepAliveTimeout = 60_000;
      const held = await rawConnect(portOf(app));
      held.send(request('GET', '/boot.ipxe'));
      await held.responses(1);
      const closing = app.close();
      await held.closed(10_000);
      await Promise.race([closing, new Promise((_, reject) => setTimeout(() => reject(new Error('close waited for an idle connection')), 10_000).unref())]);
    } finally {
      await app.close();
      await t.close();
    }
  });
});

/**
 * A front on a bare HTTP server that answers `behind: <method> <url>`; the entry script is the front's,
 * machine scripts come from `machineScript`. Runs `body` with the port and closes everything after.
 */
async function withBareFront(
  machineScript: ScriptAnswers['machineScript'],
  body: (port: number, front: ReturnType<typeof installScriptFront>) => Promise<void>,
): Promise<void> {
  const server = createServer((req, res) => res.end(`behind: ${req.method} ${req.url}`));
  const front = installScriptFront(server, {
    answers: { entryScript: '#!ipxe\nentry\n', entryBody: Buffer.from('#!ipxe\nentry\n'), machineAnswerNow: () => undefined, machineScript },
    logger: createLogger('silent'),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await body((server.address() as AddressInfo).port, front);
  } finally {
    front.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('installScriptFront on a bare HTTP server', () => {
  test('script requests are the front\'s; every other request falls through to the server behind it, on the same connection', async () => {
    const asked: unknown[] = [];
    const machineScript: ScriptAnswers['machineScript'] = async (file, mac, uuid) => {
      asked.push([file, mac, uuid]);
      return { kind: 'hold-no-image', script: `#!ipxe\n${file}\n` };
    };
    await withBareFront(machineScript, async (port, front) => {
      const c = await rawConnect(port);
      c.send(request('GET', '/boot.ipxe') + request('GET', '/nixos/machines/A1.ipxe?mac=m&uuid=u'));
      const scripts = await c.responses(2);
      assert.deepEqual(scripts.map((r) => r.body), ['#!ipxe\nentry\n', '#!ipxe\nA1.ipxe\n']);
      assert.deepEqual(asked, [['A1.ipxe', 'm', 'u']]);
      assert.equal(front.connections, 1);
      c.send(request('GET', '/images/x') + request('GET', '/boot.ipxe'));
      const behind = await c.responses(2);
      assert.deepEqual(behind.map((r) => r.body), ['behind: GET /images/x', 'behind: GET /boot.ipxe'], 'once handed over, the connection stays behind');
      assert.equal(front.connections, 0);
      c.socket.destroy();
    });
  });
});

describe('lean front heads of every length it reads', () => {
  test('a head past the first KiB and a burst of requests sent ahead are the front\'s; a head past its limit is the server\'s', async () => {
    await withBareFront(
      async () => assert.fail('no machine script is asked for'),
      async (port, front) => {
        const c = await rawConnect(port);
        c.send(request('GET', '/boot.ipxe', `Host: boot\r\nUser-Agent: ${'u'.repeat(3000)}\r\n`) + request('GET', '/boot.ipxe').repeat(200));
        const answers = await c.responses(201);
        assert.deepEqual(new Set(answers.map((r) => r.body)), new Set(['#!ipxe\nentry\n']));
        assert.equal(front.connections, 1, 'still the front\'s');
        c.send(request('GET', '/boot.ipxe', `Host: boot\r\nUser-Agent: ${'u'.repeat(9000)}\r\n`));
        const [long] = await c.responses(1);
        assert.equal(long!.body, 'behind: GET /boot.ipxe', 'a head longer than the front reads goes to the server');
        assert.equal(front.connections, 0);
        c.socket.destroy();
      },
    );
  });
});

describe('parseHead', () => {
  const cases: Array<[string, string, ReturnType<typeof parseHead> | undefined]> = [
    ['the entry script', 'GET /boot.ipxe HTTP/1.1\r\nHost: x', { method: 'GET', file: undefined, mac: undefined, uuid: undefined, close: false }],
    ['a machine script with its query', 'HEAD /nixos/machines/A1.ipxe?mac=52:54:00:00:00:01&uuid=u HTTP/1.1\r\nHost: x', { method: 'HEAD', file: 'A1.ipxe', mac: '52:54:00:00:00:01', uuid: 'u', close: false }],
    ['a repeated key is a list', 'GET /nixos/machines/A1.ipxe?mac=a&mac=b HTTP/1.1\r\nHost: x', { method: 'GET', file: 'A1.ipxe', mac: ['a', 'b'], uuid: undefined, close: false }],
    ['an escaped name is decoded', 'GET /nixos/machines/To%20Be.ipxe HTTP/1.1\r\nHost: x\r\nConnection: close', { method: 'GET', file: 'To Be.ipxe', mac: undefined, uuid: undefined, close: true }],
    ['an escaped slash is the router\'s', 'GET /nixos/machines/a%2fb.ipxe HTTP/1.1\r\nHost: x', undefined],
    ['a bad escape is the router\'s', 'GET /nixos/machines/a%zz.ipxe HTTP/1.1\r\nHost: x', undefined],
    ['an escaped query is the router\'s', 'GET /nixos/machines/A1.ipxe?mac=%41 HTTP/1.1\r\nHost: x', undefined],
    ['another route', 'GET /healthz HTTP/1.1\r\nHost: x', undefined],
    ['another method', 'POST /boot.ipxe HTTP/1.1\r\nHost: x', undefined],
    ['HTTP/1.0', 'GET /boot.ipxe HTTP/1.0\r\nHost: x', undefined],
    ['no Host', 'GET /boot.ipxe HTTP/1.1', undefined],
    ['a body', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nContent-Length: 0', undefined],
    ['a bare LF', 'GET /boot.ipxe HTTP/1.1\nHost: x', undefined],
    ['a control character', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX: a\u0001b', undefined],
    ['a non-ASCII byte', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX: \u00e9', undefined],
    ['header names in any case', 'GET /boot.ipxe HTTP/1.1\r\nhOsT: x\r\nCONNECTION: Keep-Alive, Close\r\nUser-Agent: iPXE/1.21.1', { method: 'GET', file: undefined, mac: undefined, uuid: undefined, close: true }],
    ['two Hosts, one in upper case', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nHOST: y', undefined],
    ['an upgrade in upper case', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nUPGRADE: websocket', undefined],
    ['an expect in mixed case', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nExPeCt: 100-continue', undefined],
    ['a transfer-encoding in upper case', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: chunked', undefined],
    ['a connection option it does not know', 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nConnection: Upgrade', undefined],
  ];
  for (const [name, head, expected] of cases) {
    test(name, () => assert.deepEqual(parseHead(head), expected));
  }
});

/**
 * The head grammar as regular expressions read it: the reference the scanner in `scanHead` is held to.
 * A request line, then header lines split at CRLF, each a token name, a colon and a printable value.
 */
function referenceScanHead(head: string): ReturnType<typeof scanHead> {
  const lines = head.split('\r\n');
  const line = /^(GET|HEAD) (\/[!-~]*) HTTP\/1\.1$/.exec(lines[0]!);
  if (!line) return undefined;
  let hosts = 0;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const header = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([ -~\t]*?)[ \t]*$/.exec(lines[i]!);
    if (!header) return undefined;
    const name = header[1]!.toLowerCase();
    const value = header[2]!;
    if (name === 'host') {
      if (value === '') return undefined;
      hosts += 1;
    } else if (name === 'connection') {
      for (const token of value.toLowerCase().split(',')) {
        const t = token.trim();
        if (t === 'close') close = true;
        else if (t !== 'keep-alive' && t !== '') return undefined;
      }
    } else if (['content-length', 'transfer-encoding', 'upgrade', 'expect'].includes(name)) {
      return undefined;
    }
  }
  return hosts === 1 ? { method: line[1] as 'GET' | 'HEAD', target: line[2]!, close } : undefined;
}

describe('scanHead against the regular-expression grammar', () => {
  test('agrees on 30,000 heads built from request pieces and then damaged at random', () => {
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pick = <T,>(items: readonly T[]): T => items[random(items.length)]!;
    const requestLines = ['GET /boot.ipxe HTTP/1.1', 'HEAD /nixos/machines/A1.ipxe?mac=52:54:00:00:00:01 HTTP/1.1', 'GET /nixos/machines/B%20C.ipxe HTTP/1.1', 'GET / HTTP/1.1', 'POST /boot.ipxe HTTP/1.1', 'GET /boot.ipxe HTTP/1.0', 'GET  /boot.ipxe HTTP/1.1', 'GET /boot.ipxe HTTP/1.1 ', 'get /boot.ipxe HTTP/1.1', 'GET boot.ipxe HTTP/1.1'];
    const headerLines = ['Host: boot', 'host:boot', 'HOST: \tboot \t', 'Host:', 'Host:  ', 'Connection: keep-alive', 'Connection: Keep-Alive', 'connection: close', 'Connection: keep-alive, close', 'Connection: ,', 'Connection: upgrade', 'User-Agent: iPXE/1.21.1 (g)', 'Accept: */*', 'X-Long: ' + 'v'.repeat(40), 'Content-Length: 0', 'Transfer-Encoding: chunked', 'Upgrade: h2c', 'Expect: 100-continue', 'Bad Name: x', ': x', 'NoColon', 'X:\tt\ta\tb'];
    const plainHeaders = ['Connection: keep-alive', 'User-Agent: iPXE/1.21.1 (g)', 'Accept: */*', 'X-Long: ' + 'v'.repeat(40), 'connection: close'];
    const noise = ['\r', '\n', '\r\n', '\t', ' ', ':', '\u0000', '\u0001', '\u007f', '\u00e9', '\u00ff', 'A', '%', '/', '?', '"', '(', '~'];
    let agreed = 0;
    let answered = 0;
    for (let n = 0; n < 30_000; n++) {
      const lines = [random(4) === 0 ? pick(requestLines) : pick(requestLines.slice(0, 3))];
      for (let k = random(4); k > 0; k--) lines.push(random(3) === 0 ? pick(headerLines) : pick(plainHeaders));
      if (random(8) !== 0) lines.splice(1 + random(lines.length), 0, 'Host: boot');
      let head = lines.join('\r\n');
      for (let k = random(4) === 0 ? random(3) + 1 : 0; k > 0; k--) {
        const at = random(head.length + 1);
        const op = random(3);
        if (op === 0) head = head.slice(0, at) + pick(noise) + head.slice(at);
        else if (op === 1) head = head.slice(0, at) + head.slice(at + 1);
        else head = head.slice(0, at) + pick(noise) + head.slice(at + 1);
      }
      assert.deepEqual(scanHead(head), referenceScanHead(head), JSON.stringify(head));
      // Scanned in place, as the front does: the head's end and whatever follows it are not read.
      assert.deepEqual(scanHead(`${head}\r\n\r\n${pick(requestLines)}\r\nHost: other`, head.length), scanHead(head), JSON.stringify(head));
      agreed += 1;
      if (scanHead(head) !== undefined) answered += 1;
    }
    assert.equal(agreed, 30_000);
    // Both kinds are well represented, so agreement is not just "both refuse everything".
    assert.ok(answered > 3_000 && answered < 27_000, `${answered} of 30,000 heads were scripts`);
  });
});
