/**
 * TFTP packets (RFC 1350) with option negotiation (RFC 2347: blksize 2348, timeout/tsize 2349,
 * windowsize 7440). A strict parser and small encoders; malformed input is a TftpPacketError.
 */

export const TftpOpcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** Error codes of RFC 1350 and 2347. */
export const TftpErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

/** A request packet can be no longer than this; real clients send well under 512 bytes. */
export const TFTP_MAX_REQUEST_BYTES = 1024;
/** The most options one request may carry (firmware sends at most four). */
export const TFTP_MAX_OPTIONS = 16;

export type TftpPacket =
  | { op: 1 | 2; filename: string; mode: string; options: Map<string, string> }
  | { op: 3; block: number; data: Buffer }
  | { op: 4; block: number }
  | { op: 5; code: number; message: string }
  | { op: 6; options: Map<string, string> };

export class TftpPacketError extends Error {
  constructor(message: string) {
    super(`tftp: ${message}`);
    this.name = 'TftpPacketError';
  }
}

/** Reads one TFTP packet; throws TftpPacketError on anything malformed. */
export function parseTftpPacket(buf: Buffer): TftpPacket {
  if (buf.length < 4) throw new TftpPacketError(`packet of ${buf.length} bytes is too short`);
  const op = buf.readUInt16BE(0);
  switch (op) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      if (buf.length > TFTP_MAX_REQUEST_BYTES) throw new TftpPacketError(`request of ${buf.length} bytes is longer than ${TFTP_MAX_REQUEST_BYTES}`);
      const fields = nulTerminatedFields(buf.subarray(2));
      if (fields.length < 2) throw new TftpPacketError('request needs a file name and a mode');
      if (fields.length % 2 !== 0) throw new TftpPacketError('an option has no value');
      const [filename, mode, ...rest] = fields as [string, string, ...string[]];
      if (filename === '') throw new TftpPacketError('empty file name');
      if (rest.length / 2 > TFTP_MAX_OPTIONS) throw new TftpPacketError(`more than ${TFTP_MAX_OPTIONS} options`);
      const options = new Map<string, string>();
      for (let i = 0; i < rest.length; i += 2) {
        const name = rest[i]!.toLowerCase();
        // RFC 2347: a repeated option is a malformed request, not a choice.
        if (options.has(name)) throw new TftpPacketError(`option ${name} given twice`);
        options.set(name, rest[i + 1]!);
      }
      return { op, filename, mode: mode.toLowerCase(), options };
    }
    case TftpOpcode.DATA:
      return { op, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case TftpOpcode.ACK:
      if (buf.length !== 4) throw new TftpPacketError(`ACK of ${buf.length} bytes (must be 4)`);
      return { op, block: buf.readUInt16BE(2) };
    case TftpOpcode.ERROR: {
      const end = buf.indexOf(0, 4);
      return { op, code: buf.readUInt16BE(2), message: buf.subarray(4, end === -1 ? buf.length : end).toString('latin1') };
    }
    case TftpOpcode.OACK: {
      const fields = nulTerminatedFields(buf.subarray(2));
      if (fields.length % 2 !== 0) throw new TftpPacketError('an option has no value');
      const options = new Map<string, string>();
      for (let i = 0; i < fields.length; i += 2) options.set(fields[i]!.toLowerCase(), fields[i + 1]!);
      return { op, options };
    }
    default:
      throw new TftpPacketError(`unknown opcode ${op}`);
  }
}

/** Splits NUL-terminated strings; the area must end with a NUL and hold printable ASCII only. */
function nulTerminatedFields(area: Buffer): string[] {
  if (area.length === 0 || area[area.length - 1] !== 0) throw new TftpPacketError('a string is not NUL-terminated');
  const fields: string[] = [];
  let start = 0;
  for (let i = 0; i < area.length; i++) {
    const c = area[i]!;
    if (c === 0) {
      fields.push(area.subarray(start, i).toString('latin1'));
      start = i + 1;
    } else if (c < 0x20 || c > 0x7e) {
      throw new TftpPacketError(`byte 0x${c.toString(16)} is not printable ASCII`);
    }
  }
  return fields;
}

export function encodeData(block: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(TftpOpcode.DATA, 0);
  head.writeUInt16BE(block & 0xffff, 2);
  return Buffer.concat([head, data]);
}

export function encodeAck(block: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt16BE(TftpOpcode.ACK, 0);
  buf.writeUInt16BE(block & 0xffff, 2);
  return buf;
}

export function encodeError(code: number, message: string): Buffer {
  const text = Buffer.from(message.replace(/[^\x20-\x7e]/g, '?').slice(0, 200), 'latin1');
  const buf = Buffer.alloc(5 + text.length);
  buf.writeUInt16BE(TftpOpcode.ERROR, 0);
  buf.writeUInt16BE(code, 2);
  text.copy(buf, 4);
  return buf;
}

export function encodeOack(options: ReadonlyMap<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, TftpOpcode.OACK])];
  for (const [name, value] of options) parts.push(Buffer.from(`${name}\0${value}\0`, 'latin1'));
  return Buffer.concat(parts);
}

/** Builds a read request the way a client does; for tests and tools. */
export function encodeReadRequest(filename: string, mode: string, options: Record<string, string> = {}): Buffer {
  const fields = [filename, mode, ...Object.entries(options).flat()];
  return Buffer.concat([Buffer.from([0, TftpOpcode.RRQ]), Buffer.from(fields.map((f) => `${f}\0`).join(''), 'latin1')]);
}
