import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenForReport, type HeardReport } from './report-listener.ts';

const expected = { serviceTag: 'TAG1', buildId: 7, token: 'tok-en_1' };

/** One request over the listener's Unix socket; resolves with status and body (5 s limit). */
function ask(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body === undefined ? {} : { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** What the listener decided, or 'undecided' when nothing did within 200 ms. */
function decided(heard: Promise<HeardReport>): Promise<HeardReport | 'undecided'> {
  return Promise.race([heard, new Promise<'undecided'>((resolve) => setTimeout(() => resolve('undecided'), 200))]);
}

describe('the boot check report listener', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'metal-report-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let n = 0;
  const listen = async () => {
    const lines: string[] = [];
    const socketPath = join(dir, `r${n++}.sock`);
    const listener = await listenForReport(socketPath, expected, (line) => lines.push(line));
    return { socketPath, listener, lines };
  };

  it('accepts the report with the build and token it expects, with or without a health result', async () => {
    const { socketPath, listener, lines } = await listen();
    try {
      const r = await ask(socketPath, 'POST', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 7, token: 'tok-en_1', health: { ok: true, exit_code: 0, output: 'fine' } }));
      assert.equal(r.status, 200);
      assert.deepEqual(await listener.heard, { kind: 'booted', health: { ok: true, exit_code: 0, output: 'fine' } });
      assert.deepEqual(lines, ['POST /api/v1/machines/TAG1/booted']);
    } finally {
      await listener.close();
    }
  });

  it('answers what an image asks besides its report without deciding anything', async () => {
    const { socketPath, listener } = await listen();
    try {
      assert.equal((await ask(socketPath, 'GET', '/api/v1/machines/TAG1/reboot-request?build_id=7&token=x')).status, 204);
      assert.equal((await ask(socketPath, 'GET', '/nixos/machines/TAG1.ipxe')).status, 404);
      assert.equal((await ask(socketPath, 'GET', '/api/v1/machines/TAG1/booted')).status, 404);
      assert.equal(await decided(listener.heard), 'undecided');
    } finally {
      await listener.close();
    }
  });

  const wrong: [string, string, string, RegExp][] = [
    ['another token', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 7, token: 'tok-en_2' }), /^the image sent another token than the one on its kernel line$/],
    ['a token of another length', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 7, token: 'x' }), /another token/],
    ['another build', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 8, token: 'tok-en_1' }), /^the image reported build 8, not 7$/],
    ['a build that is no number', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: '7', token: 'tok-en_1' }), /^the image reported build "7", not 7$/],
    ['another machine', '/api/v1/machines/OTHER/booted', JSON.stringify({ build_id: 7, token: 'tok-en_1' }), /^the image reported as machine OTHER, not TAG1$/],
    ['a machine name with escapes', '/api/v1/machines/%1B%5B31m/booted', JSON.stringify({ build_id: 7, token: 'tok-en_1' }), /^the image reported as machine %1B%5B31m, not TAG1$/],
    ['text that is no JSON', '/api/v1/machines/TAG1/booted', 'booted!', /^the image sent a booted report that is not JSON$/],
    ['JSON that is no object', '/api/v1/machines/TAG1/booted', 'null', /not a JSON object/],
    ['a health result of the wrong shape', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 7, token: 'tok-en_1', health: { ok: 'yes' } }), /^the image sent a booted report with a bad health result: health \.ok must be true or false$/],
    ['a body over 16 KiB', '/api/v1/machines/TAG1/booted', JSON.stringify({ build_id: 7, token: 'tok-en_1', pad: 'x'.repeat(20_000) }), /^the image sent a booted report larger than 16384 bytes$/],
  ];
  for (const [what, path, body, reason] of wrong) {
    it(`decides the check on a report with ${what}, refusing it`, async () => {
      const { socketPath, listener } = await listen();
      try {
        const r = await ask(socketPath, 'POST', path, body).catch(() => ({ status: 0, body: '' }));
        assert.notEqual(r.status, 200);
        const heard = await listener.heard;
        assert.equal(heard.kind, 'wrong');
        assert.match(heard.kind === 'wrong' ? heard.reason : '', reason);
      } finally {
        await listener.close();
      }
    });
  }
});
