import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runMetal } from '../support/server-process.ts';

describe('metal serve --roles pxe: start-up refusals name the key', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'metal-pxe-role-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  // The data directory stands in for the iPXE directory: these tests need no ipxe package.
  const base = { METAL_DATA_DIR: dataDir, METAL_IPXE_DIR: dataDir, METAL_TFTP_LISTEN: '127.0.0.1:0', METAL_LOG_LEVEL: 'silent' };

  test('an interface that does not exist', async () => {
    const r = await runMetal(['serve', '--roles', 'pxe'], { ...base, METAL_PROXYDHCP_INTERFACE: 'nosuch0' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /could not start: METAL_PROXYDHCP_INTERFACE: no interface "nosuch0"/);
  });

  test('an iPXE directory that does not exist', async () => {
    const r = await runMetal(['serve', '--roles', 'pxe'], { ...base, METAL_IPXE_DIR: join(dataDir, 'missing') });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /could not start: METAL_IPXE_DIR: .*missing is not a readable directory/);
  });

  test('a DHCP range that is not a range', async () => {
    const r = await runMetal(['serve', '--roles', 'pxe', '--dhcp-range', '10.0.0.5'], base);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /METAL_DHCP_RANGE="10.0.0.5" is invalid: expected first-last/);
  });

  test('a DHCP range without an interface to serve it on', async () => {
    const r = await runMetal(['serve', '--roles', 'pxe'], { ...base, METAL_DHCP_RANGE: '10.0.0.10-10.0.0.20' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /METAL_DHCP_RANGE: full DHCP needs METAL_PROXYDHCP_INTERFACE/);
  });
});
