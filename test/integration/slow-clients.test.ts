import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type ConfigKey } from '../../src/config/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { startServer, type RunningServer } from '../../src/server/serve.ts';
import { enrollmentPayload } from '../support/context.ts';

/**
 * Slow and stalled clients against real listeners: raw sockets that send headers and part of a
 * declared body, then go silent. METAL_REQUEST_TIMEOUT_SECONDS is short here so the suite is quick.
 */

const ADMIN_PASSWORD = 'correct horse battery staple';
const TIMEOUT_SECONDS = 0.5;

interface Started {
  server: RunningServer;
  api: URL;
  boot: URL;
  stop(): Promise<void>;
}

async function start(env: Partial<Record<ConfigKey, string>>): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-slow-'));
  const config = loadConfig(
    {
      METAL_DATA_DIR: dataDir,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: 'http://127.0.0.1:9',
      METAL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      METAL_REQUEST_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS),
      METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
      ...env,
    },
    {},
  );
  const server = await startServer(config, createLogger(config.logLevel), ['api', 'boot']);
  return {
    server,
    api: new URL(server.addresses.api!),
    boot: new URL(server.addresses.boot!),
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Rejects after `ms`: every wait in this file has a limit. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

interface RawExchange {
  socket: Socket;
  /** Everything the server sent, once it closed the connection. */
  closed: Promise<string>;
  /** The first bytes the server sent. */
  firstBytes: Promise<string>;
  /** Resolves with all received so far once it matches `pattern`. */
  received(pattern: RegExp): Promise<string>;
}

/** Opens a TCP connection and writes `data` (headers and any part of a body), then stays silent. */
function rawSend(url: URL, data: string | Buffer): RawExchange {
  const socket = connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  let resolveFirst!: (s: string) => void;
  const firstBytes = new Promise<string>((resolve) => (resolveFirst = resolve));
  const waiters: Array<{ pattern: RegExp; resolve: (s: string) => void }> = [];
  const text = () => Buffer.concat(chunks).toString('latin1');
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    resolveFirst(text());
    for (const w of [...waiters]) if (w.pattern.test(text())) w.resolve(text());
  });
  const received = (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      if (pattern.test(text())) resolve(text());
      else waiters.push({ pattern, resolve });
    });
  const closed = new Promise<string>((resolve) => {
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', () => undefined);
  });
  socket.write(data);
  return { socket, closed, firstBytes, received };
}

function partialEnrollment(url: URL, declared: number, sent: number, extraHeaders = ''): RawExchange {
  const head =
    `POST /api/v1/enroll HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n${extraHeaders}\r\n`;
  return rawSend(url, Buffer.concat([Buffer.from(head), Buffer.alloc(sent, 0x20)]));
}

async function machineCount(s: Started): Promise<number> {
  return (await s.server.ctx.machines.list({ limit: 1, offset: 0 })).total;
}

describe('stalled request bodies are cut on both listeners', { timeout: 60_000 }, () => {
  let s: Started;
  let token: string;
  before(async () => {
    s = await start({ METAL_ENROLL_RATE: '0' });
    const login = await fetch(new URL('/api/v1/auth/login', s.api), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    });
    assert.equal(login.status, 200);
    token = ((await login.json()) as { token: string }).token;
  });
  after(() => s.stop());

  test('headers and 64 KiB of a declared 1 MiB body, then silence: 408 and the connection closed, nothing stored', async () => {
    for (const url of [s.api, s.boot]) {
      const stalled = Array.from({ length: 20 }, () => partialEnrollment(url, 1024 * 1024, 64 * 1024));
      const answers = await within(Promise.all(stalled.map((x) => x.closed)), 15_000, `stalled uploads to ${url.host}`);
      for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 408 /, answer.slice(0, 100));
    }
    assert.equal(await machineCount(s), 0);
  });

  test('a stalled body on an authenticated route is cut the same way', async () => {
    const head = `PUT /api/v1/machines/NONE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"description":"`;
    const answer = await within(rawSend(s.api, head).closed, 15_000, 'stalled PUT');
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });

  test('headers that never end are cut too', async () => {
    const answer = await within(rawSend(s.boot, 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX-Slow: a').closed, 15_000, 'slow headers');
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });

  test('a followed build log (a long response, not a long request) outlives the request timeout', async () => {
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const enrolled = await fetch(new URL('/api/v1/enroll', s.api), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload('FOLLOW1')) });
    assert.equal(enrolled.status, 201);
    const put = await fetch(new URL('/api/v1/machines/FOLLOW1', s.api), { method: 'PUT', headers: auth, body: JSON.stringify({ hostname: 'follow-1', nixos_config: '{ ... }: { }' }) });
    assert.equal(put.status, 200);
    const build = await fetch(new URL('/api/v1/machines/FOLLOW1/build', s.api), { method: 'POST', headers: { authorization: auth.authorization } });
    assert.equal(build.status, 202);
    const id = ((await build.json()) as { id: number }).id;

    // No builder runs here: the build stays pending and the follow stays open.
    const follow = rawSend(s.api, `GET /api/v1/builds/${id}/log?follow=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    assert.match(await within(follow.firstBytes, 10_000, 'follow headers'), /^HTTP\/1\.1 200 /);
    let closedEarly = false;
    void follow.closed.then(() => (closedEarly = true));
    await sleep(TIMEOUT_SECONDS * 1000 * 6);
    assert.equal(closedEarly, false, 'the follow stream was cut by the request timeout');

    const cancel = await fetch(new URL(`/api/v1/builds/${id}/cancel`, s.api), { method: 'POST', headers: { authorization: auth.authorization } });
    assert.equal(cancel.status, 200);
    const text = await within(follow.received(/event: end/), 15_000, 'follow stream end after cancel');
    assert.match(text, /"status":"cancelled"/);
    follow.socket.destroy();
  });
});

describe('the enrollment rate limit and token apply before the body is read', { timeout: 60_000 }, () => {
  let s: Started;
  before(async () => {
    s = await start({ METAL_ENROLL_RATE: '1', METAL_REQUEST_TIMEOUT_SECONDS: '30' });
  });
  after(() => s.stop());

  test('over the limit: 429 on the headers alone, while the declared body is never sent', async () => {
    const first = await fetch(new URL('/api/v1/enroll', s.boot), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload('LIMIT1')) });
    assert.equal(first.status, 201);
    for (const url of [s.boot, s.api]) {
      const limited = partialEnrollment(url, 500_000, 0);
      const answer = await within(limited.firstBytes, 10_000, `429 from ${url.host} before the body`);
      assert.match(answer, /^HTTP\/1\.1 429 /);
      assert.match(answer, /METAL_ENROLL_RATE/);
      limited.socket.destroy();
    }
    assert.equal(await machineCount(s), 1);
  });
});

describe('a missing enrollment token is refused before the body is read', { timeout: 60_000 }, () => {
  let s: Started;
  before(async () => {
    s = await start({ METAL_ENROLL_RATE: '0', METAL_ENROLL_TOKEN: 'enroll-secret-0123456789', METAL_REQUEST_TIMEOUT_SECONDS: '30' });
  });
  after(() => s.stop());

  test('401 on the headers alone', async () => {
    const refused = partialEnrollment(s.boot, 500_000, 0);
    const answer = await within(refused.firstBytes, 10_000, '401 before the body');
    assert.match(answer, /^HTTP\/1\.1 401 /);
    refused.socket.destroy();
  });
});
