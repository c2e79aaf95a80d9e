import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { encodeAck, encodeData, encodeError, encodeOack, encodeReadRequest, parseTftpPacket, TftpOpcode, TftpPacketError } from './tftp-packet.ts';

describe('parseTftpPacket', () => {
  test('reads a read request with options, names lower-cased', () => {
    const p = parseTftpPacket(encodeReadRequest('undionly.kpxe', 'OCTET', { BLKSIZE: '1468', tsize: '0' }));
    assert.deepEqual(p, { op: TftpOpcode.RRQ, filename: 'undionly.kpxe', mode: 'octet', options: new Map([['blksize', '1468'], ['tsize', '0']]) });
  });

  test('reads DATA, ACK, ERROR and OACK as encoded', () => {
    assert.deepEqual(parseTftpPacket(encodeData(65535, Buffer.from('abc'))), { op: 3, block: 65535, data: Buffer.from('abc') });
    assert.deepEqual(parseTftpPacket(encodeAck(7)), { op: 4, block: 7 });
    assert.deepEqual(parseTftpPacket(encodeError(1, 'not found')), { op: 5, code: 1, message: 'not found' });
    assert.deepEqual(parseTftpPacket(encodeOack(new Map([['tsize', '9']]))), { op: 6, options: new Map([['tsize', '9']]) });
  });

  const refused: Array<[string, Buffer, RegExp]> = [
    ['a packet under 4 bytes is refused', Buffer.from([0, 1, 0]), /too short/],
    ['an unknown opcode is refused', Buffer.from([0, 9, 0, 0]), /unknown opcode 9/],
    ['a request without a mode is refused', Buffer.from('\0\x01file\0'), /file name and a mode/],
    ['a request not ending in NUL is refused', Buffer.from('\0\x01file\0octet'), /NUL-terminated/],
    ['an option without a value is refused', Buffer.from('\0\x01file\0octet\0blksize\0'), /no value/],
    ['an option given twice is refused', encodeReadRequest('f', 'octet', { blksize: '512', BLKSIZE: '1024' }), /twice/],
    ['more than 16 options are refused', encodeReadRequest('f', 'octet', Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`o${i}`, '1']))), /more than 16/],
    ['an oversized request is refused', encodeReadRequest('a'.repeat(1100), 'octet'), /longer than 1024/],
    ['an empty file name is refused', encodeReadRequest('', 'octet'), /empty file name/],
    ['control bytes in a name are refused', encodeReadRequest('a\x01b', 'octet'), /not printable/],
    ['an ACK with extra bytes is refused', Buffer.from([0, 4, 0, 1, 0]), /must be 4/],
  ];
  for (const [rule, packet, message] of refused) {
    test(rule, () => assert.throws(() => parseTftpPacket(packet), (err: Error) => err instanceof TftpPacketError && message.test(err.message)));
  }

  test('fuzz: random bytes and mutations only ever fail with TftpPacketError', () => {
    const base = encodeReadRequest('snponly.efi', 'octet', { blksize: '1468', tsize: '0', windowsize: '4' });
    for (let i = 0; i < 20_000; i++) {
      const input = i % 2 ? randomBytes(Math.floor(Math.random() * 1200)) : mutate(base);
      try {
        parseTftpPacket(input);
      } catch (err) {
        if (!(err instanceof TftpPacketError)) throw new Error(`input ${input.toString('hex')} threw ${String(err)}`);
      }
    }
  });
});

function mutate(packet: Buffer): Buffer {
  const b = Buffer.from(packet);
  for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
  return Math.random() < 0.3 ? b.subarray(0, Math.floor(Math.random() * b.length)) : b;
}
