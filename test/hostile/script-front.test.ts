import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { hostileString, pct, runs } from '../support/hostile.ts';
import { rawRequest, type RawResponse } from '../support/raw-http.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * The boot listener's lean front reads request heads itself (src/boot/script-front.ts). Generated
 * request lines and headers, sent byte for byte to a boot listener with the front and to one
 * without it: the same answer (status, headers but the date, body with the per-boot token masked)
 * or the same refusal to answer, never a 5xx, and no row written.
 */

const port = (app: FastifyInstance) => (app.server.address() as AddressInfo).port;

type Outcome = { closed: true } | { status: number; headers: Array<[string, string]>; body: string };

async function outcome(app: FastifyInstance, raw: string, head: boolean): Promise<Outcome> {
  let r: RawResponse;
  try {
    r = await rawRequest(port(app), raw, head);
  } catch (err) {
    if (/closed before/.test((err as Error).message)) return { closed: true };
    throw err;
  }
  return { status: r.status, headers: r.headers.filter(([n]) => n !== 'date'), body: r.body.replace(/metal\.boot_token=\S+/g, 'metal.boot_token=<token>') };
}

/** A piece of a request target: hostile text as it is, escaped, or a plausible value. */
const piece = fc.oneof(
  hostileString(40),
  hostileString(40).map(pct),
  fc.constantFrom('READY1', 'WAIT1', 'NEW1', 'To%20Be%20Filled%20By%20O.E.M.', '52:54:00:00:00:01', '52-54-00-00-00-02', '4c4c4544-0042-3510-8052-b3c04f4e3232', ''),
);
/** Header lines, well-formed or not. */
const headerLine = fc.oneof(
  fc.constantFrom('Host: boot', 'host: boot', 'Connection: keep-alive', 'Connection: close', 'User-Agent: iPXE/1.21.1', 'Content-Length: 0', 'Transfer-Encoding: chunked', 'Expect: 100-continue', 'X-Folded: a\r\n b', 'Host:', ' Host: boot'),
  fc.tuple(hostileString(20), hostileString(40)).map(([n, v]) => `${n}: ${v}`),
);

describe('hostile requests to the boot listener\'s lean front', { timeout: 300_000 }, () => {
  let t: TestContext;
  let front: FastifyInstance;
  let plain: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite());
    const reg = t.ctx.images.registrationDir;
    mkdirSync(reg, { recursive: true });
    for (const f of ['bzImage', 'initrd']) writeFileSync(join(reg, f), f);
    writeFileSync(join(reg, 'boot.json'), JSON.stringify({ kernel_params: ['console=ttyS0'] }));
    await t.ctx.machines.enroll(enrollmentPayload('WAIT1', { mac_address: '52:54:00:00:00:02' }), { kind: 'machine', name: 'WAIT1' });
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

  test('generated request lines and headers: the same outcome with the front as without it, never a 5xx, nothing written', async () => {
    const before = await rowCounts(t.ctx);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'HEAD', 'POST', 'get', 'GET /x'),
        fc.constantFrom('/nixos/machines/', '/boot.ipxe', '/nixos/machines//', '/NIXOS/machines/', '/healthz/../nixos/machines/'),
        piece,
        fc.constantFrom('.ipxe', '.IPXE', '', '.ipxe/', '.ipxe#x'),
        fc.array(fc.tuple(fc.constantFrom('mac', 'uuid', 'MAC', 'x', ''), piece), { maxLength: 3 }),
        fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'http/1.1'),
        fc.array(headerLine, { maxLength: 3 }),
        async (method, prefix, name, suffix, query, version, headers) => {
          const target = `${prefix}${name}${suffix}${query.length ? `?${query.map(([k, v]) => `${k}=${v}`).join('&')}` : ''}`;
          const raw = `${method} ${target} ${version}\r\n${['Host: boot', ...headers].join('\r\n')}\r\n\r\n`;
          const head = method === 'HEAD';
          const ours = await outcome(front, raw, head);
          const theirs = await outcome(plain, raw, head);
          assert.deepEqual(ours, theirs, JSON.stringify(raw));
          if ('status' in ours) assert.ok(ours.status < 500, `${ours.status} for ${JSON.stringify(raw)}`);
        },
      ),
      { seed: 21_2026, numRuns: runs(300) },
    );
    assert.deepEqual(await rowCounts(t.ctx), before);
  });
});
