import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  clientArchitecture,
  clientMac,
  DhcpOption,
  DhcpPacketError,
  encodeDhcpReply,
  messageType,
  parseDhcpPacket,
  userClasses,
  vendorClass,
} from './dhcp-packet.ts';
import { clientPacket, UEFI_PXE_VENDOR } from './testing/pxe-client-packets.ts';

describe('parseDhcpPacket', () => {
  const good = clientPacket({ xid: 0x12345678, vendorClass: UEFI_PXE_VENDOR, arch: 7, userClass: 'iPXE', mac: '52:54:00:aa:bb:cc' });

  test('reads the fields firmware sends', () => {
    const p = parseDhcpPacket(good);
    assert.equal(p.op, 1);
    assert.equal(p.xid, 0x12345678);
    assert.equal(p.flags, 0x8000);
    assert.equal(messageType(p), 1);
    assert.equal(vendorClass(p), UEFI_PXE_VENDOR);
    assert.equal(clientArchitecture(p), 7);
    assert.deepEqual(userClasses(p), ['iPXE']);
    assert.equal(clientMac(p), '52:54:00:aa:bb:cc');
  });

  const refused: Array<[string, Buffer, RegExp]> = [
    ['shorter than the header is refused', good.subarray(0, 239), /shorter than the 240-byte header/],
    ['longer than a frame is refused', Buffer.concat([good, Buffer.alloc(1300)]), /longer than 1500/],
    ['no magic cookie is refused', Object.assign(Buffer.from(good), { 236: 0 }), /magic cookie/],
    ['an unknown op is refused', Object.assign(Buffer.from(good), { 0: 3 }), /op 3/],
    ['a hardware address over 16 bytes is refused', Object.assign(Buffer.from(good), { 2: 17 }), /over 16/],
    ['an option without its length byte is refused', Buffer.concat([good.subarray(0, 240), Buffer.from([60])]), /no length byte/],
    ['an option longer than the packet is refused', Buffer.concat([good.subarray(0, 240), Buffer.from([60, 50, 1, 2])]), /past the end/],
    ['an overload option of a bad value is refused', Buffer.concat([good.subarray(0, 240), Buffer.from([52, 1, 4, 255])]), /overload/],
    ['an overflowing option inside an overloaded file field is refused', (() => {
      const b = Buffer.concat([good.subarray(0, 240), Buffer.from([52, 1, 1, 255])]);
      b[108] = 60;
      b[109] = 200;
      return b;
    })(), /file field claims 200 bytes/],
  ];
  for (const [rule, packet, message] of refused) {
    test(rule, () => assert.throws(() => parseDhcpPacket(packet), (err: Error) => err instanceof DhcpPacketError && message.test(err.message)));
  }

  test('options overloaded into the file and sname fields are read (RFC 2131 option 52)', () => {
    const b = Buffer.concat([good.subarray(0, 240), Buffer.from([52, 1, 3, 53, 1, 1, 255])]);
    Buffer.from([60, 9, ...Buffer.from('PXEClient'), 255]).copy(b, 108);
    Buffer.from([93, 2, 0, 7, 255]).copy(b, 44);
    const p = parseDhcpPacket(b);
    assert.equal(vendorClass(p), 'PXEClient');
    assert.equal(clientArchitecture(p), 7);
    assert.equal(p.file, '');
  });

  test('a repeated option is concatenated (RFC 3396)', () => {
    const b = Buffer.concat([good.subarray(0, 240), Buffer.from([60, 3, ...Buffer.from('PXE'), 60, 6, ...Buffer.from('Client'), 255])]);
    assert.equal(vendorClass(parseDhcpPacket(b)), 'PXEClient');
  });

  test('user classes in RFC 3004 form are split; a bare string is one class', () => {
    const withOpt = (v: number[]) => parseDhcpPacket(Buffer.concat([good.subarray(0, 240), Buffer.from([77, v.length, ...v, 255])]));
    assert.deepEqual(userClasses(withOpt([4, ...Buffer.from('iPXE'), 3, ...Buffer.from('foo')])), ['iPXE', 'foo']);
    assert.deepEqual(userClasses(withOpt([...Buffer.from('iPXE')])), ['iPXE']);
  });

  test('an architecture option of odd length is ignored', () => {
    const p = parseDhcpPacket(Buffer.concat([good.subarray(0, 240), Buffer.from([93, 3, 0, 7, 0, 255])]));
    assert.equal(clientArchitecture(p), undefined);
  });

  test('fuzz: random bytes and mutations only ever fail with DhcpPacketError', () => {
    for (let i = 0; i < 20_000; i++) {
      const input = i % 2 ? randomBytes(Math.floor(Math.random() * 1600)) : mutate(good, 1 + (i % 8));
      try {
        const p = parseDhcpPacket(input);
        // Whatever parsed must be readable by every accessor without throwing.
        messageType(p);
        vendorClass(p);
        userClasses(p);
        clientArchitecture(p);
        clientMac(p);
      } catch (err) {
        if (!(err instanceof DhcpPacketError)) throw new Error(`input ${input.toString('hex')} threw ${String(err)}`);
      }
    }
  });
});

describe('encodeDhcpReply', () => {
  test('round-trips through the parser', () => {
    const chaddr = Buffer.from([0x52, 0x54, 0, 1, 2, 3]);
    const buf = encodeDhcpReply({ xid: 9, flags: 0x8000, chaddr, htype: 1, hlen: 6, siaddr: '10.0.0.4', file: 'snponly.efi', options: [[DhcpOption.MESSAGE_TYPE, Buffer.from([2])], [DhcpOption.VENDOR_CLASS, Buffer.from('PXEClient')]] });
    const p = parseDhcpPacket(buf);
    assert.equal(p.op, 2);
    assert.equal(p.siaddr, '10.0.0.4');
    assert.equal(p.file, 'snponly.efi');
    assert.equal(vendorClass(p), 'PXEClient');
  });

  test('an option over 255 bytes is split into parts that read back whole', () => {
    const long = Buffer.alloc(600, 0x61);
    const buf = encodeDhcpReply({ xid: 1, flags: 0, chaddr: Buffer.alloc(6), htype: 1, hlen: 6, options: [[DhcpOption.BOOTFILE_NAME, long]] });
    assert.ok(parseDhcpPacket(buf).options.get(DhcpOption.BOOTFILE_NAME)!.equals(long));
  });

  test('a file name that does not fit the field is refused, not cut', () => {
    assert.throws(() => encodeDhcpReply({ xid: 1, flags: 0, chaddr: Buffer.alloc(6), htype: 1, hlen: 6, file: 'x'.repeat(128), options: [] }), DhcpPacketError);
  });
});

function mutate(packet: Buffer, flips: number): Buffer {
  const b = Buffer.from(packet);
  for (let k = 0; k < flips; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
  return Math.random() < 0.3 ? b.subarray(0, Math.floor(Math.random() * b.length)) : b;
}
