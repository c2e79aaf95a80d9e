import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import { interfaceAddress, PxeStartError, startPxeServices } from './pxe-services.ts';
import { rawTftpDownload } from './testing/tftp-test-client.ts';

const logger = createLogger(process.env.METAL_TEST_LOG_LEVEL ?? 'silent');

describe('startPxeServices', () => {
  test('without an interface: TFTP only, serving the iPXE directory', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-ipxe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'undionly.kpxe'), 'kpxe');
    const pxe = await startPxeServices({ ipxeDir: dir, tftpListen: { host: '127.0.0.1', port: 0 }, proxyDhcpInterface: undefined, bootUrl: 'http://10.0.0.5:8081', logger });
    try {
      assert.equal(pxe.proxyDhcp, undefined);
      assert.equal((await rawTftpDownload(pxe.tftp.address.port, 'undionly.kpxe')).data.toString(), 'kpxe');
    } finally {
      await pxe.stop();
    }
  });

  test('a missing iPXE directory stops start-up naming METAL_IPXE_DIR', async () => {
    await assert.rejects(
      startPxeServices({ ipxeDir: '/nonexistent/ipxe', tftpListen: { host: '127.0.0.1', port: 0 }, proxyDhcpInterface: undefined, bootUrl: 'http://x', logger }),
      (err: Error) => err instanceof PxeStartError && /^METAL_IPXE_DIR: \/nonexistent\/ipxe is not a readable directory/.test(err.message),
    );
  });

  test('an unknown interface stops start-up naming METAL_PROXYDHCP_INTERFACE, before anything listens', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-ipxe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await assert.rejects(
      startPxeServices({ ipxeDir: dir, tftpListen: { host: '127.0.0.1', port: 0 }, proxyDhcpInterface: 'nosuch0', bootUrl: 'http://x', logger }),
      (err: Error) => err instanceof PxeStartError && /^METAL_PROXYDHCP_INTERFACE: no interface "nosuch0"/.test(err.message),
    );
  });

  test('an interface address is its first IPv4 address', () => {
    assert.deepEqual(interfaceAddress('lo'), { address: '127.0.0.1', netmask: '255.0.0.0' });
  });

  test('a TFTP port in use stops start-up naming METAL_TFTP_LISTEN', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-ipxe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = await startPxeServices({ ipxeDir: dir, tftpListen: { host: '127.0.0.1', port: 0 }, proxyDhcpInterface: undefined, bootUrl: 'http://x', logger });
    t.after(() => first.stop());
    // reuseAddr lets UDP sockets share a port only when both ask; a plain socket holds it alone.
    const { createSocket } = await import('node:dgram');
    const holder = createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', () => resolve()));
    t.after(() => holder.close());
    await assert.rejects(
      startPxeServices({ ipxeDir: dir, tftpListen: { host: '127.0.0.1', port: holder.address().port }, proxyDhcpInterface: undefined, bootUrl: 'http://x', logger }),
      /METAL_TFTP_LISTEN: 127\.0\.0\.1:\d+ is already in use/,
    );
  });

  test('METAL_DHCP_RANGE without an interface, or outside its subnet, stops start-up naming the key', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-ipxe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const base = { ipxeDir: dir, tftpListen: { host: '127.0.0.1', port: 0 }, bootUrl: 'http://x', logger, leases: undefined };
    await assert.rejects(
      startPxeServices({ ...base, proxyDhcpInterface: undefined, dhcpRange: { first: '10.0.0.10', last: '10.0.0.20' } }),
      /^PxeStartError: METAL_DHCP_RANGE: full DHCP needs METAL_PROXYDHCP_INTERFACE/,
    );
    await assert.rejects(
      startPxeServices({ ...base, proxyDhcpInterface: 'lo', dhcpRange: { first: '10.0.0.10', last: '10.0.0.20' } }),
      /METAL_DHCP_RANGE: 10\.0\.0\.10-10\.0\.0\.20 is not inside lo's subnet 127\.0\.0\.1\/255\.0\.0\.0/,
    );
  });
});
