import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import { migrate, openDatabase, type Database } from '../storage/database.ts';
import { DhcpLeaseStore, leaseDb } from '../storage/dhcp-lease-store.ts';
import { freshSqlite, type TestDatabase } from '../../test/support/databases.ts';
import { DhcpMessageType, DhcpOption, encodeDhcpRequest, messageType, parseDhcpPacket, vendorClass, type DhcpPacket } from './dhcp-packet.ts';
import { startProxyDhcp, type ProxyDhcp } from './proxy-dhcp.ts';
import { clientPacket, UEFI_PXE_VENDOR } from './testing/pxe-client-packets.ts';
import { UdpProbe } from './testing/udp-probe.ts';

const logger = createLogger(process.env.METAL_TEST_LOG_LEVEL ?? 'silent');

describe('full DHCP (METAL_DHCP_RANGE) on loopback, leases in SQLite', () => {
  let db: TestDatabase;
  let database: Database;
  let leases: DhcpLeaseStore;
  let proxy: ProxyDhcp;
  let client: UdpProbe;
  let xid = 5000;
  const now = new Date('2026-01-01T00:00:00Z');

  before(async () => {
    db = freshSqlite();
    database = await openDatabase(db.url);
    await migrate(database);
    leases = new DhcpLeaseStore(leaseDb(database.db));
    client = await UdpProbe.open();
    proxy = await startProxyDhcp({
      serverAddress: '127.0.0.1',
      bootUrl: 'http://10.0.0.5:8081',
      availableFiles: () => new Set(['snponly.efi', 'undionly.kpxe']),
      logger,
      ports: { dhcp: 0, pxe: 0, client: client.port },
      broadcastAddress: '127.0.0.1',
      hearBroadcasts: false,
      fullDhcp: { range: { first: '10.9.0.10', last: '10.9.0.11' }, netmask: '255.255.255.0', leaseSeconds: 600, leases, now: () => now },
    });
  });
  after(async () => {
    await proxy?.close();
    await client?.close();
    await database?.close();
    await db?.cleanup();
  });

  async function ask(packet: Buffer): Promise<DhcpPacket> {
    await client.send(packet, proxy.ports.dhcp);
    const got = await client.receive(5000);
    assert.ok(got, 'an answer');
    return parseDhcpPacket(got.msg);
  }
  const request = (mac: string, address: string, extra: Array<[number, Buffer]> = []) =>
    encodeDhcpRequest({
      xid: ++xid,
      chaddr: Buffer.from(mac.split(':').map((h) => parseInt(h, 16))),
      options: [[DhcpOption.MESSAGE_TYPE, Buffer.from([DhcpMessageType.REQUEST])], [DhcpOption.REQUESTED_ADDRESS, Buffer.from(address.split('.').map(Number))], ...extra],
    });

  test('a plain client: DISCOVER gets an OFFER with an address, mask and lease time, REQUEST an ACK, and the lease is stored', async () => {
    const offer = await ask(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:01' }));
    assert.equal(messageType(offer), DhcpMessageType.OFFER);
    assert.equal(offer.yiaddr, '10.9.0.10');
    assert.deepEqual([...offer.options.get(DhcpOption.SUBNET_MASK)!], [255, 255, 255, 0]);
    assert.equal(offer.options.get(DhcpOption.LEASE_TIME)!.readUInt32BE(0), 600);
    assert.equal(vendorClass(offer), undefined, 'no PXE options for a plain client');
    assert.equal(offer.file, '');
    assert.equal(await leases.leaseOf('52:54:00:00:00:01'), undefined, 'an offer writes nothing');

    const ack = await ask(request('52:54:00:00:00:01', '10.9.0.10'));
    assert.equal(messageType(ack), DhcpMessageType.ACK);
    assert.equal(ack.yiaddr, '10.9.0.10');
    assert.deepEqual(await leases.leaseOf('52:54:00:00:00:01'), { address: '10.9.0.10', mac: '52:54:00:00:00:01', expiresAt: '2026-01-01T00:10:00.000Z' });
  });

  test('a PXE client gets an address and its boot file in one answer', async () => {
    const offer = await ask(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:02', vendorClass: UEFI_PXE_VENDOR, arch: 7 }));
    assert.equal(offer.yiaddr, '10.9.0.11');
    assert.equal(offer.file, 'snponly.efi');
    assert.equal(offer.siaddr, '127.0.0.1');
    assert.equal(vendorClass(offer), 'PXEClient');
  });

  test("a REQUEST for another client's address is NAKed; one naming another server is left alone", async () => {
    const nak = await ask(request('52:54:00:00:00:03', '10.9.0.10'));
    assert.equal(messageType(nak), DhcpMessageType.NAK);
    assert.equal(nak.yiaddr, '0.0.0.0');
    const outOfRange = await ask(request('52:54:00:00:00:03', '192.168.1.5'));
    assert.equal(messageType(outOfRange), DhcpMessageType.NAK);
    // Left alone: the next answer is to the DISCOVER after it.
    await client.send(request('52:54:00:00:00:03', '10.9.0.11', [[DhcpOption.SERVER_ID, Buffer.from([10, 0, 0, 1])]]), proxy.ports.dhcp);
    const next = await ask(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:03' }));
    assert.equal(messageType(next), DhcpMessageType.OFFER);
  });

  test('a relayed DISCOVER (from another subnet) is not given an address from this one', async () => {
    const relayed = clientPacket({ xid: ++xid, mac: '52:54:00:00:00:05' });
    Buffer.from([192, 168, 5, 1]).copy(relayed, 24); // giaddr
    await client.send(relayed, proxy.ports.dhcp);
    const next = await ask(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:05' }));
    assert.equal(next.xid, xid, 'the first answer is to the direct DISCOVER after it');
  });

  test('a full range offers nothing; a RELEASE frees an address for the next client', async () => {
    assert.equal(messageType(await ask(request('52:54:00:00:00:02', '10.9.0.11'))), DhcpMessageType.ACK);
    await client.send(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:04' }), proxy.ports.dhcp);
    const release = encodeDhcpRequest({ xid: ++xid, chaddr: Buffer.from([0x52, 0x54, 0, 0, 0, 1]), ciaddr: '10.9.0.10', options: [[DhcpOption.MESSAGE_TYPE, Buffer.from([DhcpMessageType.RELEASE])]] });
    await client.send(release, proxy.ports.dhcp);
    // The DISCOVER before the release got nothing: the first answer now is the offer after it.
    const offer = await ask(clientPacket({ xid: ++xid, mac: '52:54:00:00:00:04' }));
    assert.equal(offer.xid, xid);
    assert.equal(offer.yiaddr, '10.9.0.10');
  });
});
