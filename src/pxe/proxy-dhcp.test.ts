import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import { DhcpMessageType, DhcpOption, messageType, parseDhcpPacket, vendorClass, type DhcpPacket } from './dhcp-packet.ts';
import { startProxyDhcp, type ProxyDhcp } from './proxy-dhcp.ts';
import { BIOS_PXE_VENDOR, clientPacket, UEFI_HTTP_VENDOR, UEFI_PXE_VENDOR } from './testing/pxe-client-packets.ts';
import { UdpProbe } from './testing/udp-probe.ts';

const logger = createLogger(process.env.METAL_TEST_LOG_LEVEL ?? 'silent');
const BOOT_URL = 'http://10.0.0.5:8081';
const UUID = Buffer.from('303631503334344d3232383436303835', 'hex');

describe('proxyDHCP on loopback', () => {
  let proxy: ProxyDhcp;
  let client: UdpProbe;
  let available = new Set(['undionly.kpxe', 'snponly.efi', 'ipxe.efi']);
  let xid = 1000;

  before(async () => {
    client = await UdpProbe.open();
    proxy = await startProxyDhcp({
      serverAddress: '127.0.0.1',
      bootUrl: BOOT_URL,
      availableFiles: () => available,
      logger,
      ports: { dhcp: 0, pxe: 0, client: client.port },
      broadcastAddress: '127.0.0.1',
      hearBroadcasts: false,
    });
  });
  after(async () => {
    await proxy?.close();
    await client?.close();
  });

  /** Sends one packet and returns the answer to it, skipping none: answers come in order. */
  async function ask(packet: Buffer, port = proxy.ports.dhcp): Promise<DhcpPacket> {
    await client.send(packet, port);
    const got = await client.receive(5000);
    assert.ok(got, 'an answer');
    return parseDhcpPacket(got.msg);
  }

  /**
   * Proves a packet is not answered: a known-good request sent right after it is answered first.
   * Both go through one socket to one server, which handles them in order.
   */
  async function assertIgnored(packet: Buffer, port = proxy.ports.dhcp): Promise<void> {
    await client.send(packet, port);
    const marker = ++xid;
    const answer = await ask(clientPacket({ xid: marker, vendorClass: UEFI_PXE_VENDOR, arch: 7 }), proxy.ports.dhcp);
    assert.equal(answer.xid, marker, 'the first answer is to the marker: the packet before it got none');
  }

  const cases: Array<{ rule: string; vendor: string; arch?: number; userClass?: string; file?: string; url?: string; vendorBack: string; bios?: boolean }> = [
    { rule: 'legacy BIOS PXE gets undionly.kpxe over TFTP and the discovery-control option', vendor: BIOS_PXE_VENDOR, arch: 0, file: 'undionly.kpxe', vendorBack: 'PXEClient', bios: true },
    { rule: 'x64 UEFI (arch 7) gets snponly.efi', vendor: UEFI_PXE_VENDOR, arch: 7, file: 'snponly.efi', vendorBack: 'PXEClient' },
    { rule: 'x64 UEFI as EFI BC (arch 9) gets snponly.efi', vendor: 'PXEClient:Arch:00009:UNDI:003016', arch: 9, file: 'snponly.efi', vendorBack: 'PXEClient' },
    { rule: 'iPXE (user class iPXE) gets the /boot.ipxe URL', vendor: UEFI_PXE_VENDOR, arch: 7, userClass: 'iPXE', url: `${BOOT_URL}/boot.ipxe`, vendorBack: 'PXEClient' },
    { rule: 'iPXE under BIOS gets the /boot.ipxe URL too', vendor: BIOS_PXE_VENDOR, arch: 0, userClass: 'iPXE', url: `${BOOT_URL}/boot.ipxe`, vendorBack: 'PXEClient' },
    { rule: 'UEFI HTTP boot (arch 16) gets the HTTP URL of ipxe.efi with vendor class HTTPClient', vendor: UEFI_HTTP_VENDOR, arch: 16, url: `${BOOT_URL}/ipxe/ipxe.efi`, vendorBack: 'HTTPClient' },
  ];
  for (const c of cases) {
    test(c.rule, async () => {
      const id = ++xid;
      const offer = await ask(clientPacket({ xid: id, vendorClass: c.vendor, arch: c.arch, userClass: c.userClass, uuid: UUID, mac: '52:54:00:aa:bb:cc' }));
      assert.equal(offer.op, 2);
      assert.equal(offer.xid, id);
      assert.equal(messageType(offer), DhcpMessageType.OFFER);
      assert.equal(offer.chaddr.toString('hex'), '525400aabbcc');
      assert.equal(offer.yiaddr, '0.0.0.0', 'a proxy never hands out an address');
      assert.equal(offer.siaddr, '127.0.0.1', 'next server: our TFTP');
      assert.equal(vendorClass(offer), c.vendorBack);
      assert.deepEqual([...offer.options.get(DhcpOption.SERVER_ID)!], [127, 0, 0, 1]);
      assert.deepEqual(offer.options.get(DhcpOption.CLIENT_UUID), Buffer.concat([Buffer.from([0]), UUID]), 'the client UUID is echoed');
      const expected = c.file ?? c.url!;
      assert.equal(offer.file, expected);
      assert.equal(offer.options.get(DhcpOption.BOOTFILE_NAME)?.toString(), expected);
      assert.deepEqual(offer.options.get(DhcpOption.VENDOR_SPECIFIC), c.bios ? Buffer.from([6, 1, 8, 255]) : undefined);
    });
  }

  test('without snponly.efi, x64 UEFI gets ipxe.efi', async () => {
    available = new Set(['undionly.kpxe', 'ipxe.efi']);
    try {
      const offer = await ask(clientPacket({ xid: ++xid, vendorClass: UEFI_PXE_VENDOR, arch: 7 }));
      assert.equal(offer.file, 'ipxe.efi');
    } finally {
      available = new Set(['undionly.kpxe', 'snponly.efi', 'ipxe.efi']);
    }
  });

  test('arm64 UEFI gets snp.efi when present, and no answer without it', async () => {
    await assertIgnored(clientPacket({ xid: ++xid, vendorClass: 'PXEClient:Arch:00011:UNDI:003016', arch: 11 }));
    available = new Set([...available, 'snp.efi']);
    try {
      const offer = await ask(clientPacket({ xid: ++xid, vendorClass: 'PXEClient:Arch:00011:UNDI:003016', arch: 11 }));
      assert.equal(offer.file, 'snp.efi');
    } finally {
      available.delete('snp.efi');
    }
  });

  test('a REQUEST on port 4011 (after the site DHCP gave an address) gets an ACK with the boot file, sent back to its source', async () => {
    const id = ++xid;
    const ack = await ask(clientPacket({ xid: id, type: DhcpMessageType.REQUEST, vendorClass: UEFI_PXE_VENDOR, arch: 7, ciaddr: '127.0.0.1', uuid: UUID }), proxy.ports.pxe);
    assert.equal(ack.xid, id);
    assert.equal(messageType(ack), DhcpMessageType.ACK);
    assert.equal(ack.file, 'snponly.efi');
    assert.equal(ack.siaddr, '127.0.0.1');
    assert.equal(ack.yiaddr, '0.0.0.0');
  });

  test('a REQUEST on the DHCP port is answered only when it names us as server', async () => {
    await assertIgnored(clientPacket({ xid: ++xid, type: DhcpMessageType.REQUEST, vendorClass: UEFI_PXE_VENDOR, arch: 7, serverId: Buffer.from([10, 0, 0, 1]) }));
    const ack = await ask(clientPacket({ xid: ++xid, type: DhcpMessageType.REQUEST, vendorClass: UEFI_PXE_VENDOR, arch: 7, serverId: Buffer.from([127, 0, 0, 1]) }));
    assert.equal(messageType(ack), DhcpMessageType.ACK);
  });

  const ignored: Array<[string, Buffer]> = [
    ['a plain DHCP client (no option 60)', clientPacket({ xid: 1, arch: 7 })],
    ['a client with another vendor class', clientPacket({ xid: 2, vendorClass: 'MSFT 5.0' })],
    ['a PXE client without an architecture', clientPacket({ xid: 3, vendorClass: 'PXEClient' })],
    ['an IA32 UEFI client (no binary for it)', clientPacket({ xid: 4, vendorClass: 'PXEClient:Arch:00006', arch: 6 })],
    ['an HTTP boot client of another architecture', clientPacket({ xid: 5, vendorClass: 'HTTPClient:Arch:00015', arch: 15 })],
    ['a DHCPRELEASE', clientPacket({ xid: 6, type: DhcpMessageType.RELEASE, vendorClass: UEFI_PXE_VENDOR, arch: 7 })],
    ['a DISCOVER sent to port 4011', clientPacket({ xid: 7, vendorClass: UEFI_PXE_VENDOR, arch: 7 })],
    ['a BOOTREPLY', (() => { const b = clientPacket({ xid: 8, vendorClass: UEFI_PXE_VENDOR, arch: 7 }); b[0] = 2; return b; })()],
  ];
  for (const [what, packet] of ignored) {
    test(`no answer to ${what}`, async () => {
      await assertIgnored(packet, what.includes('4011') ? proxy.ports.pxe : proxy.ports.dhcp);
    });
  }

  describe('hostile input', () => {
    const valid = clientPacket({ xid: 77, vendorClass: UEFI_PXE_VENDOR, arch: 7, userClass: 'iPXE' });
    const cases: Array<[string, Buffer]> = [
      ['an empty packet', Buffer.alloc(0)],
      ['a truncated header', valid.subarray(0, 100)],
      ['the header without options', valid.subarray(0, 240)],
      ['an option cut in half', valid.subarray(0, 245)],
      ['an oversized packet', Buffer.concat([valid, Buffer.alloc(2000)])],
      ['an option length past the end', (() => { const b = Buffer.from(valid.subarray(0, 244)); b[241] = 200; return b; })()],
      ['a bad overload option', (() => { const b = Buffer.from(valid); b.set([52, 1, 9, 255], 240); return b; })()],
      ['a wrong magic cookie', (() => { const b = Buffer.from(valid); b[236] = 0; return b; })()],
      ['a hardware address length over 16', (() => { const b = Buffer.from(valid); b[2] = 200; return b; })()],
    ];
    for (const [what, packet] of cases) {
      test(`${what} is dropped and the server keeps answering`, async () => {
        await assertIgnored(packet);
      });
    }

    test('a flood of random and mutated packets: no crash, junk unanswered, then a good request is answered', { timeout: 60_000 }, async () => {
      const flooder = await UdpProbe.open();
      try {
        // Rounds of 100 (a socket buffer holds a few hundred), each followed by a good request.
        for (let round = 0; round < 30; round++) {
          for (let i = 0; i < 100; i++) {
            const junk = i % 2 === 0 ? randomBytes(Math.floor(Math.random() * 1600)) : mutate(clientPacket({ xid: i, arch: 7 }));
            await flooder.send(junk, i % 3 === 0 ? proxy.ports.pxe : proxy.ports.dhcp);
          }
          const id = ++xid;
          const answer = await ask(clientPacket({ xid: id, vendorClass: UEFI_PXE_VENDOR, arch: 7 }));
          assert.equal(answer.xid, id);
        }
        // Mutations of a plain DHCP client's packet: none is a PXE client, so none is answered.
        assert.equal(await flooder.receive(200), undefined, 'no answer to junk');
      } finally {
        await flooder.close();
      }
    });
  });
});

/** Flips a few random bytes (never the option 60 area: the base packet has none). */
function mutate(packet: Buffer): Buffer {
  const b = Buffer.from(packet);
  for (let k = 0; k < 4; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
  return b;
}
