import { buildBootServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { imagePathSegments, parseRange } from './image-files.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

/** Sends one request line exactly as given (no client-side normalisation of `..`) and returns status and body. */
function rawRequest(port: number, method: string, path: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${method} ${path}`)));
    socket.on('connect', () => socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body });
    });
  });
}

describe('GET|HEAD /images/...', () => {
  let t: TestContext;
  let app: FastifyInstance;
  let port: number;
  const kernel = randomBytes(3 * 1024 * 1024 + 17);
  const secret = 'root:x:0:0:TOP-SECRET';
  let outside: string;
  /** A real build, its directory on disk `builds/<buildId>/`, served as `builds/<key>/`. */
  let buildId: number;
  let key: string;

  before(async () => {
    t = await createTestContext(freshSqlite());
    const images = t.ctx.images;
    const operator = { kind: 'user', name: 'test', role: 'operator' } as const;
    await t.ctx.machines.enroll(enrollmentPayload('FILES1'), { kind: 'machine', name: 'FILES1' });
    await t.ctx.machines.update('FILES1', { hostname: 'files-1' }, operator);
    buildId = (await t.ctx.machines.requestBuild('FILES1', operator)).id;
    key = (await t.ctx.storage.builds.findRecord(buildId))!.image_key;
    mkdirSync(images.registrationDir, { recursive: true });
    writeFileSync(join(images.registrationDir, 'bzImage'), kernel);
    writeFileSync(join(images.registrationDir, 'initrd'), 'initrd-bytes');
    writeFileSync(join(images.registrationDir, 'boot.json'), '{"kernel_params":[]}');
    mkdirSync(join(images.buildDir(buildId), 'subdir'), { recursive: true });
    writeFileSync(join(images.buildDir(buildId), 'initrd'), '0123456789');
    utimesSync(join(images.buildDir(buildId), 'initrd'), new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
    mkdirSync(join(images.root, 'machines'), { recursive: true });
    symlinkSync(`../builds/${buildId}`, images.machineLink('LINKED1'));
    outside = join(t.dataDir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'passwd'), secret);
    symlinkSync(join(outside, 'passwd'), join(images.registrationDir, 'evil'));
    symlinkSync(outside, images.machineLink('EVIL1'));
    symlinkSync('../../outside/passwd', join(images.buildDir(buildId), 'escape'));
    app = await buildBootServer(t.ctx);
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(address).port);
  });
  after(async () => {
    await app.close();
    await t.close();
  });

  test('GET streams the whole file with length, validators and the type', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/images/registration/bzImage`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('content-length'), String(kernel.length));
    assert.equal(r.headers.get('accept-ranges'), 'bytes');
    assert.match(r.headers.get('etag') ?? '', /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.match(r.headers.get('last-modified') ?? '', /GMT$/);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(kernel));
    const json = await app.inject({ url: '/images/registration/boot.json' });
    assert.equal(json.headers['content-type'], 'application/json');
    assert.equal(json.body, '{"kernel_params":[]}');
  });

  test('a build whose image key starts with `-` (one in 64) serves its files', async () => {
    const { machine } = await t.ctx.machines.enroll(enrollmentPayload('FILES2'), { kind: 'machine', name: 'FILES2' });
    const dashed = '-Y55siHndE4xXyLxvQrbeQ';
    const build = await t.ctx.storage.builds.create(
      { machine_id: machine.id, config: '{ ... }: { }', hostname: 'files-2', service_tag: 'FILES2', boot_token: randomBytes(24).toString('base64url'), image_key: dashed },
      new Date().toISOString(),
    );
    mkdirSync(t.ctx.images.buildDir(build.id), { recursive: true });
    writeFileSync(join(t.ctx.images.buildDir(build.id), 'initrd'), 'dashed-initrd');
    const r = await app.inject({ url: `/images/builds/${dashed}/initrd` });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.body, 'dashed-initrd');
  });

  test('HEAD: the headers of GET and no body', async () => {
    const r = await rawRequest(port, 'HEAD', '/images/registration/bzImage');
    assert.equal(r.status, 200);
    assert.match(r.head, new RegExp(`content-length: ${kernel.length}\r\n`, 'i'));
    assert.equal(r.body, '');
  });

  test('Range: 206 with the bytes asked for; suffix and open ranges; several ranges get the whole file', async () => {
    const url = `/images/builds/${key}/initrd`;
    const cases: Array<[string, number, string, string | undefined]> = [
      ['bytes=2-5', 206, '2345', 'bytes 2-5/10'],
      ['bytes=7-', 206, '789', 'bytes 7-9/10'],
      ['bytes=-3', 206, '789', 'bytes 7-9/10'],
      ['bytes=8-100', 206, '89', 'bytes 8-9/10'],
      ['bytes=0-1,4-5', 200, '0123456789', undefined],
      ['bytes=5-2', 200, '0123456789', undefined],
      ['pages=1-2', 200, '0123456789', undefined],
    ];
    for (const [range, status, body, contentRange] of cases) {
      const r = await app.inject({ url, headers: { range } });
      assert.equal(r.statusCode, status, range);
      assert.equal(r.body, body, range);
      assert.equal(r.headers['content-length'], String(body.length), range);
      assert.equal(r.headers['content-range'], contentRange, range);
    }
    const big = await fetch(`http://127.0.0.1:${port}/images/registration/bzImage`, { headers: { range: 'bytes=1048570-2097160' } });
    assert.equal(big.status, 206);
    assert.ok(Buffer.from(await big.arrayBuffer()).equals(kernel.subarray(1048570, 2097161)));
  });

  test('Range past the end: 416 with the size', async () => {
    for (const range of ['bytes=10-', 'bytes=10-20', 'bytes=-0']) {
      const r = await app.inject({ url: `/images/builds/${key}/initrd`, headers: { range } });
      assert.equal(r.statusCode, 416, range);
      assert.equal(r.headers['content-range'], 'bytes */10');
      assert.equal(r.json().error.code, 'invalid_input');
    }
  });

  test('If-Range naming another version: the whole file', async () => {
    const r = await app.inject({ url: `/images/builds/${key}/initrd`, headers: { range: 'bytes=0-1', 'if-range': '"old"' } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '0123456789');
  });

  test('If-None-Match and If-Modified-Since: 304 without a body when unchanged', async () => {
    const first = await app.inject({ url: `/images/builds/${key}/initrd` });
    const etag = first.headers.etag as string;
    assert.equal(first.headers['last-modified'], 'Fri, 02 Jan 2026 03:04:05 GMT');
    for (const headers of [{ 'if-none-match': etag }, { 'if-none-match': `"x", ${etag}` }, { 'if-none-match': '*' }, { 'if-modified-since': 'Fri, 02 Jan 2026 03:04:05 GMT' }]) {
      const r = await app.inject({ url: `/images/builds/${key}/initrd`, headers });
      assert.equal(r.statusCode, 304, JSON.stringify(headers));
      assert.equal(r.body, '');
      assert.equal(r.headers.etag, etag);
    }
    for (const headers of [{ 'if-none-match': '"other"' }, { 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' }, { 'if-none-match': '"other"', 'if-modified-since': 'Fri, 02 Jan 2026 03:04:05 GMT' }]) {
      const r = await app.inject({ url: `/images/builds/${key}/initrd`, headers });
      assert.equal(r.statusCode, 200, JSON.stringify(headers));
      assert.equal(r.body, '0123456789');
    }
  });

  test('a build’s files are served by its random key only: not by counting build ids, not by machines/<tag>', async () => {
    assert.equal((await app.inject({ url: `/images/builds/${key}/initrd` })).body, '0123456789');
    for (const url of [`/images/builds/${buildId}/initrd`, '/images/builds/1/initrd', '/images/machines/LINKED1/initrd', `/images/builds/${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}/initrd`]) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 404, url);
      assert.equal(r.json().error.code, 'not_found', url);
    }
  });

  test('traversal by .., encoded .., encoded /, NUL, backslash or a symlink pointing out: 404, nothing leaks', async () => {
    const attempts = [
      '/images/../../../etc/passwd',
      '/images/registration/../../outside/passwd',
      '/images/registration/../../../etc/passwd',
      '/images/%2e%2e/outside/passwd',
      '/images/registration/%2e%2e/%2e%2e/outside/passwd',
      '/images/registration/..%2f..%2foutside%2fpasswd',
      '/images/registration%2f..%2f..%2foutside%2fpasswd',
      '/images/%2E%2E%2F%2E%2E%2Foutside%2Fpasswd',
      '/images/registration/bzImage%00',
      '/images/registration/bzImage%00.json',
      '/images/registration/..%5c..%5coutside%5cpasswd',
      '/images/registration/%252e%252e/passwd',
      '/images/registration/evil',
      '/images/machines/EVIL1/passwd',
      `/images/builds/${key}/escape`,
      '/images/registration/.',
      '/images/registration/%',
    ];
    for (const path of attempts) {
      const r = await rawRequest(port, 'GET', path);
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.ok(!r.body.includes('TOP-SECRET'), path);
      if (r.status === 404) assert.deepEqual(JSON.parse(r.body), { error: { code: 'not_found', message: 'no such image file' } }, path);
    }
  });

  test('directories are never listed; missing files and paths outside the layout are 404', async () => {
    for (const path of [
      '/images/',
      '/images/registration',
      '/images/registration/',
      `/images/builds/${key}`,
      `/images/builds/${key}/`,
      `/images/builds/${key}/subdir`,
      '/images/machines/LINKED1',
      '/images/registration/nothing',
      '/images/builds/8/initrd',
      '/images/builds/007/initrd',
      '/images/builds/AAAAAAAAAAAAAAAAAAAAAA/initrd',
      '/images/other/file',
    ]) {
      const r = await rawRequest(port, 'GET', path);
      assert.equal(r.status, 404, path);
      assert.equal(JSON.parse(r.body).error.code, 'not_found', path);
    }
  });
});

describe('image path rules', () => {
  test('only files of the layout map to segments', () => {
    const ok: Array<[string, string[]]> = [
      ['registration/bzImage', ['registration', 'bzImage']],
      ['builds/3q2-7wAAAAB3zM1uYm9vdA/boot.json', ['builds', '3q2-7wAAAAB3zM1uYm9vdA', 'boot.json']],
      ['builds/3q2-7wAAAAB3zM1uYm9vd%41/initrd', ['builds', '3q2-7wAAAAB3zM1uYm9vdA', 'initrd']],
      // A base64url key starts with `-` (one in 64) or `_`: its machine must still boot.
      ['builds/-Y55siHndE4xXyLxvQrbeQ/bzImage', ['builds', '-Y55siHndE4xXyLxvQrbeQ', 'bzImage']],
      ['builds/_Y55siHndE4xXyLxvQrbeQ/initrd', ['builds', '_Y55siHndE4xXyLxvQrbeQ', 'initrd']],
    ];
    for (const [path, segments] of ok) assert.deepEqual(imagePathSegments(path), segments, path);
    for (const path of ['registration', 'builds/x/initrd', 'builds/0/initrd', 'builds/12/boot.json', 'machines/ABC-123.x/initrd', 'machines/.hidden/initrd', 'registration/.boot.json', 'registration/a/b', '', 'x/y', 'registration/-x', 'builds/-Y55siHndE4xXyLxvQrbeQ/.hidden', 'builds/-Y55siHndE4xXyLxvQrbeQ/-x', 'builds/.Y55siHndE4xXyLxvQrbeQ/initrd', 'builds/-Y55siHndE4xXyLxvQrbe%2F/initrd']) {
      assert.equal(imagePathSegments(path), undefined, path);
    }
  });

  test('every image key a build can get maps to its files', () => {
    // As BuildLifecycle makes them: 16 random bytes in base64url.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const key = Buffer.from(bytes).toString('base64url');
        assert.deepEqual(imagePathSegments(`builds/${key}/bzImage`), ['builds', key, 'bzImage'], key);
      }),
      { seed: 0x1a9e, numRuns: 2000 },
    );
  });

  test('ranges', () => {
    assert.deepEqual(parseRange('bytes=0-0', 5), { start: 0, end: 0 });
    assert.deepEqual(parseRange('bytes=-10', 5), { start: 0, end: 4 });
    assert.equal(parseRange('bytes=5-', 5), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=-', 5), undefined);
    assert.equal(parseRange('bytes=a-b', 5), undefined);
  });
});
