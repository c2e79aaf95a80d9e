import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { installErrorHandling } from '../http/error-handler.ts';
import { createLogger } from '../core/logger.ts';
import { registerIpxeBinaryRoutes } from './ipxe-binary-routes.ts';

describe('GET /ipxe/<file>', () => {
  let dir: string;
  let outside: string;
  let app: FastifyInstance;
  const efi = Buffer.from('MZ fake efi application');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metal-ipxe-'));
    outside = mkdtempSync(join(tmpdir(), 'metal-outside-'));
    writeFileSync(join(dir, 'snponly.efi'), efi);
    writeFileSync(join(outside, 'real-ipxe.efi'), 'linked');
    // As Debian ships it: ipxe.efi is a link the directory itself holds.
    symlinkSync(join(outside, 'real-ipxe.efi'), join(dir, 'ipxe.efi'));
    writeFileSync(join(outside, 'secret'), 'secret');
    mkdirSync(join(dir, 'qemu'));
    app = Fastify();
    installErrorHandling(app);
    registerIpxeBinaryRoutes(app, { dir, logger: createLogger('silent') });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  test('serves a binary with its length as application/efi', async () => {
    const r = await app.inject({ url: '/ipxe/snponly.efi' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'application/efi');
    assert.equal(Number(r.headers['content-length']), efi.length);
    assert.ok(r.rawPayload.equals(efi));
  });

  test('HEAD gives the length without a body', async () => {
    const r = await app.inject({ method: 'HEAD', url: '/ipxe/snponly.efi' });
    assert.equal(r.statusCode, 200);
    assert.equal(Number(r.headers['content-length']), efi.length);
    assert.equal(r.rawPayload.length, 0);
  });

  test('a link held by the directory is followed', async () => {
    const r = await app.inject({ url: '/ipxe/ipxe.efi' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.payload, 'linked');
  });

  for (const [what, url] of [
    ['an encoded ../', `/ipxe/..%2F${'x'}`],
    ['an encoded absolute path', '/ipxe/%2Fetc%2Fpasswd'],
    ['a hidden name', '/ipxe/.secret'],
    ['a directory', '/ipxe/qemu'],
    ['a missing file', '/ipxe/undionly.kpxe'],
    ['a nested path', '/ipxe/qemu/x.rom'],
  ] as const) {
    test(`${what} is not found, as a JSON error`, async () => {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 404, r.payload);
      assert.equal(r.json().error.code, 'not_found');
    });
  }
});
