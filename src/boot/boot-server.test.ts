import { buildBootServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';

/** A logger whose warnings land in `lines`. */
function capturingLogger(lines: Array<Record<string, unknown>>) {
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return pino({ level: 'warn' }, stream);
}

describe('boot server start-up', () => {
  let t: TestContext;
  before(async () => {
    t = await createTestContext(freshSqlite());
  });
  after(() => t.close());

  test('a missing registration image is a clear warning naming the directory; a complete one is none', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const app = await buildBootServer({ ...t.ctx, logger: capturingLogger(lines) });
    await app.close();
    const warning = lines.find((l) => String(l.msg).includes('registration image'));
    assert.ok(warning, JSON.stringify(lines));
    assert.equal(warning.dir, t.ctx.images.registrationDir);
    assert.match(String(warning.msg), /bzImage, initrd, boot\.json missing/);
    assert.ok(String(warning.msg).includes(t.ctx.images.registrationDir));

    mkdirSync(t.ctx.images.registrationDir, { recursive: true });
    for (const f of ['bzImage', 'initrd']) writeFileSync(join(t.ctx.images.registrationDir, f), f);
    writeFileSync(join(t.ctx.images.registrationDir, 'boot.json'), '{"kernel_params":["console=ttyS0"]}');
    const quiet: Array<Record<string, unknown>> = [];
    const again = await buildBootServer({ ...t.ctx, logger: capturingLogger(quiet) });
    await again.close();
    assert.deepEqual(quiet, []);
  });

  test('every route is public and enrollment works on the boot listener', async () => {
    const app = await buildBootServer(t.ctx);
    try {
      const r = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('ENROLL1') });
      assert.equal(r.statusCode, 201);
      const script = await app.inject({ url: '/nixos/machines/ENROLL1.ipxe' });
      assert.equal(script.statusCode, 200);
      assert.match(script.body, /^#!ipxe\n/);
      const head = await app.inject({ method: 'HEAD', url: '/boot.ipxe' });
      assert.equal(head.statusCode, 200);
    } finally {
      await app.close();
    }
  });
});
