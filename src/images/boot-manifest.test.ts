import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_MANIFEST_BYTES, parseBootManifest, readBootManifest } from './boot-manifest.ts';

describe('boot.json validation', () => {
  const accepted: Array<[string, unknown, boolean, { init: string | undefined; kernelParams: string[] }]> = [
    ['a NixOS image', { init: '/nix/store/abc-nixos-system-web-01-24.05/init', kernel_params: ['console=ttyS0,115200n8', 'loglevel=4'] }, true, { init: '/nix/store/abc-nixos-system-web-01-24.05/init', kernelParams: ['console=ttyS0,115200n8', 'loglevel=4'] }],
    ['registration without init', { kernel_params: ['console=ttyS0'] }, false, { init: undefined, kernelParams: ['console=ttyS0'] }],
    ['no kernel_params', { init: '/init' }, true, { init: '/init', kernelParams: [] }],
  ];
  for (const [name, value, requireInit, manifest] of accepted) {
    test(`accepts ${name}`, () => assert.deepEqual(parseBootManifest(value, requireInit), { ok: true, manifest }));
  }

  const refused: Array<[string, unknown]> = [
    ['tab', { init: '/init', kernel_params: ['a\tb'] }],
    ['carriage return', { init: '/init', kernel_params: ['a\rb'] }],
    ['closing brace', { init: '/init', kernel_params: ['a}'] }],
    ['dollar', { init: '/init', kernel_params: ['$x'] }],
    ['pipe', { init: '/init', kernel_params: ['a|b'] }],
    ['backslash', { init: '/init', kernel_params: ['a\\b'] }],
    ['empty parameter', { init: '/init', kernel_params: [''] }],
    ['number parameter', { init: '/init', kernel_params: [3] }],
    ['initrd override', { init: '/init', kernel_params: ['initrd=other'] }],
    ['enrollment_url override', { init: '/init', kernel_params: ['enrollment_url=http://evil'] }],
    ['relative init', { init: 'init', kernel_params: [] }],
    ['init with newline', { init: '/init\nreboot', kernel_params: [] }],
    ['too many parameters', { init: '/init', kernel_params: Array.from({ length: 65 }, () => 'quiet') }],
    ['an array', []],
    ['null', null],
  ];
  for (const [name, value] of refused) {
    test(`refuses ${name}`, () => {
      const r = parseBootManifest(value, true);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.reason, /^boot\.json /);
    });
  }

  test('reading: missing, too large, not JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-manifest-'));
    try {
      assert.deepEqual(await readBootManifest(join(dir, 'boot.json'), true), { ok: false, missing: true, reason: 'boot.json is missing' });
      writeFileSync(join(dir, 'big.json'), ' '.repeat(MAX_MANIFEST_BYTES + 1));
      assert.deepEqual(await readBootManifest(join(dir, 'big.json'), true), { ok: false, missing: false, reason: `boot.json is larger than ${MAX_MANIFEST_BYTES} bytes` });
      writeFileSync(join(dir, 'bad.json'), '{');
      assert.deepEqual(await readBootManifest(join(dir, 'bad.json'), true), { ok: false, missing: false, reason: 'boot.json is not valid JSON' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
