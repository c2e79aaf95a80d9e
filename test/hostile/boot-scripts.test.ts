import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { renderHoldScript, renderImageScript, renderRegistrationScript, scriptUrl } from '../../src/boot/ipxe-script.ts';
import { buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { hostileString, macFor, pct, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * iPXE scripts built from generated input: whatever a machine or a manifest sends, every line of a
 * script is one of the commands the boot server writes, and every interpolated value stays one word
 * (no whitespace, no `${…}` expansion, no `||`/`&&`, no newline). A value that could not be written
 * safely is refused (an exception in the renderer, a 4xx or a hold script over HTTP), never written.
 */

/** A word iPXE neither expands, splits nor treats as an operator (the renderer's own rule). */
const WORD = /^[A-Za-z0-9._,:/=+@%~?&[\]-]+$/;
const LABEL = /^:[a-z]+$/;

/** The shapes of the lines the boot server writes; `W` stands for one safe word. */
const SHAPES: Array<{ re: RegExp; words?: (m: RegExpExecArray) => string[] }> = [
  { re: /^#!ipxe$/ },
  { re: LABEL },
  { re: /^echo metal: [A-Za-z0-9 .,:()/=_-]*$/ },
  { re: /^set metal_try:int32 0$/ },
  { re: /^inc metal_try$/ },
  { re: /^kernel (\S+(?: \S+)*) \|\| goto failed$/, words: (m) => m[1]!.split(' ') },
  { re: /^initrd --name initrd (\S+) \|\| goto failed$/, words: (m) => [m[1]!] },
  { re: /^boot \|\| goto failed$/ },
  { re: /^iseq \$\{metal_try\} \d+ \|\| goto retry$/ },
  { re: /^sleep \d+$/ },
  { re: /^chain --replace --autofree (\S+) \|\| goto (?:restart|wait|failed)$/, words: (m) => [m[1]!] },
  { re: /^goto (?:fetch|retry|wait)$/ },
];

/** The one expansion the server writes itself: iPXE's MAC of the booting NIC on the registration kernel line. */
const SERVER_EXPANSIONS = new Set(['metal.boot_mac=${netX/mac}']);

/** Fails unless every line of `script` has a known shape and every interpolated word is safe. */
function assertSafeScript(script: string, what: string): void {
  assert.ok(script.endsWith('\n'), `${what}: no final newline`);
  const lines = script.slice(0, -1).split('\n');
  assert.equal(lines[0], '#!ipxe', what);
  for (const line of lines) {
    assert.ok(!line.includes('\r') && !line.includes('\0'), `${what}: control character in ${JSON.stringify(line)}`);
    const shape = SHAPES.map((s) => ({ s, m: s.re.exec(line) })).find((x) => x.m);
    assert.ok(shape, `${what}: a line the boot server does not write: ${JSON.stringify(line.slice(0, 200))}`);
    for (const w of shape.s.words?.(shape.m!) ?? []) {
      if (SERVER_EXPANSIONS.has(w)) continue;
      assert.match(w, WORD, `${what}: unsafe word ${JSON.stringify(w)}`);
      assert.ok(!w.includes('${') && !w.includes('&&') && !w.includes('||'), `${what}: word ${JSON.stringify(w)} expands or chains`);
    }
  }
}

/** Runs a renderer: it either refuses (throws) or writes a safe script. */
function renderedOrRefused(render: () => string, what: string): void {
  let script: string;
  try {
    script = render();
  } catch (err) {
    assert.match((err as Error).message, /refusing/, `${what}: ${(err as Error).message}`);
    return;
  }
  assertSafeScript(script, what);
}

const bootUrl = fc.oneof(fc.constantFrom('http://10.0.2.100', 'http://[fd00::5]:8081', 'https://boot.example.org/metal'), hostileString());
const kernelParams = fc.array(hostileString(40), { maxLength: 6 });

describe('iPXE rendering of generated values', () => {
  test('registration scripts: refused or safe', () => {
    fc.assert(
      fc.property(
        bootUrl,
        fc.option(hostileString(), { nil: undefined }),
        hostileString(),
        kernelParams,
        fc.option(hostileString(), { nil: undefined }),
        fc.option(hostileString(), { nil: undefined }),
        fc.option(hostileString(), { nil: undefined }),
        fc.constantFrom('reboot' as const, 'poweroff' as const, 'hold' as const),
        (url, tag, selfUrl, params, init, enrollToken, bootMac, afterEnroll) => {
        renderedOrRefused(
          () => renderRegistrationScript({ bootUrl: url, selfUrl, tag, manifest: { init, kernelParams: params }, enrollToken, bootMac, afterEnroll }),
          `registration ${JSON.stringify({ url, tag, selfUrl, params, init, enrollToken, bootMac })}`,
        );
      }),
      { seed: 0x1b0e_0001, numRuns: runs(2000) },
    );
  });

  test('image scripts: refused or safe', () => {
    fc.assert(
      fc.property(bootUrl, hostileString(), fc.integer({ min: 1, max: 2 ** 31 - 1 }), hostileString(), kernelParams, fc.option(hostileString(), { nil: undefined }), (url, tag, buildId, bootToken, params, init) => {
        renderedOrRefused(
          () => renderImageScript({ bootUrl: url, selfUrl: `${url}/nixos/machines/${tag}.ipxe`, tag, buildId, imageKey: 'k3yK3yK3yK3yK3yK3yK3yA', bootToken, manifest: { init, kernelParams: params } }),
          `image ${JSON.stringify({ url, tag, bootToken, params, init })}`,
        );
      }),
      { seed: 0x1b0e_0002, numRuns: runs(2000) },
    );
  });

  test('hold scripts and self URLs: refused or safe', () => {
    fc.assert(
      fc.property(bootUrl, hostileString(), fc.option(hostileString(), { nil: undefined }), fc.option(hostileString(), { nil: undefined }), fc.array(hostileString(), { maxLength: 3 }), (url, tag, mac, uuid, messages) => {
        renderedOrRefused(() => renderHoldScript({ selfUrl: scriptUrl(url, tag, mac, uuid), messages, sleepSeconds: 30 }), `hold ${JSON.stringify({ url, tag, mac, uuid, messages })}`);
      }),
      { seed: 0x1b0e_0003, numRuns: runs(2000) },
    );
  });
});

/** A refusal in the API's error format, `{"error": {"code", "message"}}`, that does not echo a long request back. */
function assertErrorBody(r: { statusCode: number; body: string; headers: Record<string, unknown> }, url: string): void {
  const where = `${url.slice(0, 120)}: ${r.statusCode} ${r.body.slice(0, 200)}`;
  assert.match(String(r.headers['content-type']), /^application\/json/, where);
  const body = JSON.parse(r.body) as { error?: { code?: unknown; message?: unknown } };
  assert.equal(typeof body.error?.code, 'string', where);
  assert.equal(typeof body.error?.message, 'string', where);
  assert.ok(r.body.length < 1024, `${where}: the answer is ${r.body.length} bytes`);
}

describe('boot scripts served for generated requests', { timeout: 120_000 }, () => {
  let t: TestContext;
  let boot: FastifyInstance;
  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_ENROLL_RATE: '0', METAL_ENROLL_TOKEN: 'enroll-secret-0123456789' });
    const dir = t.ctx.images.registrationDir;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bzImage'), 'kernel');
    writeFileSync(join(dir, 'initrd'), 'initrd');
    writeFileSync(join(dir, 'boot.json'), JSON.stringify({ init: '/nix/store/aaaa-registration/init', kernel_params: ['console=ttyS0'] }));
    boot = await buildBootServer(t.ctx, { registrationTtlMs: 0, lastSeenIntervalMs: 60_000 });
    for (const tag of ['KNOWN1', 'KNOWN2']) await t.ctx.machines.enroll({ service_tag: tag, mac_address: macFor(tag), hardware: {} }, { kind: 'machine', name: tag });
  });
  after(async () => {
    await boot.close();
    await t.close();
  });

  test('GET /nixos/machines/<file>?mac=&uuid=: a safe script or a 4xx, never a 5xx, and no row written', async () => {
    const file = fc.oneof(fc.constantFrom('KNOWN1', 'KNOWN2', 'known1', 'UNKNOWN9'), hostileString());
    const query = fc.oneof(fc.constant(''), hostileString(), fc.constantFrom(macFor('KNOWN1'), macFor('KNOWN1').toUpperCase(), '52:54:00:12:34:56', '4c4c4544-0042-3510-8052-b3c04f4e3232'));
    const before = await rowCounts(t.ctx);
    await fc.assert(
      fc.asyncProperty(file, fc.boolean(), query, query, fc.boolean(), async (name, ipxe, mac, uuid, raw) => {
        const path = `/nixos/machines/${raw ? name.replace(/[\s#?]/g, '') : pct(name)}${ipxe ? '.ipxe' : ''}`;
        const url = `${path}?mac=${pct(mac)}&uuid=${pct(uuid)}`;
        const r = await boot.inject({ url });
        assert.ok(r.statusCode < 500, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
        if (r.statusCode === 200) assertSafeScript(r.body, url);
        else assertErrorBody(r, url);
      }),
      { seed: 0x1b0e_0004, numRuns: runs(400) },
    );
    // What the router itself refuses (bad percent-encoding, an over-long name) is answered the same way.
    for (const [url, status] of [['/nixos/machines/%ZZ.ipxe', 400], [`/nixos/machines/${'A'.repeat(5000)}.ipxe`, 414], ['/nixos/machines/%E0%A4%A.ipxe', 400]] as const) {
      const r = await boot.inject({ url });
      assert.equal(r.statusCode, status, url.slice(0, 80));
      assertErrorBody(r, url);
    }
    // Scripts record last_seen_at in memory only until the next flush: no row was added.
    assert.deepEqual(await rowCounts(t.ctx), before);
    assertSafeScript((await boot.inject({ url: '/boot.ipxe' })).body.replace(/\$\{serial:uristring\}\.ipxe\?mac=\$\{netX\/mac\}&uuid=\$\{uuid\}/, 'x.ipxe'), '/boot.ipxe');
  });
});
