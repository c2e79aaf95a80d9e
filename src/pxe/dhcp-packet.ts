/**
 * DHCP (RFC 2131/2132) packets as a proxyDHCP needs them: a strict parser for what clients send and an
 * encoder for what we answer. Every length is checked against the buffer; a packet that breaks a rule
 * is refused with a DhcpPacketError, never half read.
 */

/** BOOTP op codes. */
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;

/** DHCP message types (option 53). */
export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** Option codes we read or write. */
export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  VENDOR_SPECIFIC: 43,
  REQUESTED_ADDRESS: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MAX_MESSAGE_SIZE: 57,
  VENDOR_CLASS: 60,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  END: 255,
} as const;

const MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP header (236 bytes) plus the magic cookie. */
export const DHCP_HEADER_BYTES = 240;
/** Largest request we read: an Ethernet frame's payload. Anything bigger is not a DHCP client's. */
export const DHCP_MAX_PACKET_BYTES = 1500;

/** A packet that is not a DHCP message we can read; the message says which rule it broke. */
export class DhcpPacketError extends Error {
  constructor(message: string) {
    super(`dhcp: ${message}`);
    this.name = 'DhcpPacketError';
  }
}

/** A parsed DHCP message. Addresses are dotted quads; options keep their raw bytes by code. */
export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, the first `hlen` bytes of chaddr. */
  chaddr: Buffer;
  /** Server host name field (NUL-terminated text). */
  sname: string;
  /** Boot file name field (NUL-terminated text). */
  file: string;
  /** Options by code; a code seen twice has its parts concatenated (RFC 3396). */
  options: Map<number, Buffer>;
}

/** Reads one DHCP message; throws DhcpPacketError on anything malformed. */
export function parseDhcpPacket(buf: Buffer): DhcpPacket {
  if (buf.length < DHCP_HEADER_BYTES) throw new DhcpPacketError(`packet of ${buf.length} bytes is shorter than the ${DHCP_HEADER_BYTES}-byte header`);
  if (buf.length > DHCP_MAX_PACKET_BYTES) throw new DhcpPacketError(`packet of ${buf.length} bytes is longer than ${DHCP_MAX_PACKET_BYTES}`);
  if (buf.readUInt32BE(236) !== MAGIC_COOKIE) throw new DhcpPacketError('no DHCP magic cookie (a plain BOOTP packet)');
  const op = buf[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpPacketError(`op ${op} is neither request nor reply`);
  const hlen = buf[2]!;
  if (hlen > 16) throw new DhcpPacketError(`hardware address length ${hlen} is over 16`);

  const options = new Map<number, Buffer>();
  readOptions(buf.subarray(DHCP_HEADER_BYTES), options, 'options');
  const overload = options.get(DhcpOption.OVERLOAD);
  let file = cString(buf.subarray(108, 236));
  let sname = cString(buf.subarray(44, 108));
  if (overload !== undefined) {
    if (overload.length !== 1 || overload[0]! < 1 || overload[0]! > 3) throw new DhcpPacketError('option 52 (overload) must be one byte, 1 to 3');
    // Options continue in the file field, then in sname (RFC 2131 4.1).
    if (overload[0]! & 1) {
      readOptions(buf.subarray(108, 236), options, 'file field');
      file = '';
    }
    if (overload[0]! & 2) {
      readOptions(buf.subarray(44, 108), options, 'sname field');
      sname = '';
    }
  }
  return {
    op,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipv4At(buf, 12),
    yiaddr: ipv4At(buf, 16),
    siaddr: ipv4At(buf, 20),
    giaddr: ipv4At(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
    sname,
    file,
    options,
  };
}

function readOptions(area: Buffer, into: Map<number, Buffer>, where: string): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === DhcpOption.PAD) {
      i++;
      continue;
    }
    if (code === DhcpOption.END) return;
    if (i + 1 >= area.length) throw new DhcpPacketError(`option ${code} in the ${where} has no length byte`);
    const len = area[i + 1]!;
    if (i + 2 + len > area.length) throw new DhcpPacketError(`option ${code} in the ${where} claims ${len} bytes past the end of the packet`);
    const value = area.subarray(i + 2, i + 2 + len);
    const before = into.get(code);
    into.set(code, before ? Buffer.concat([before, value]) : Buffer.from(value));
    i += 2 + len;
  }
  // Running off the end without an END option is tolerated: some firmware pads to the frame instead.
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('latin1');
}

function ipv4At(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** The message type (option 53), or undefined when absent or malformed. */
export function messageType(packet: DhcpPacket): number | undefined {
  const v = packet.options.get(DhcpOption.MESSAGE_TYPE);
  return v?.length === 1 ? v[0] : undefined;
}

/** Option 60 as text, e.g. `PXEClient:Arch:00007:UNDI:003016`. */
export function vendorClass(packet: DhcpPacket): string | undefined {
  return packet.options.get(DhcpOption.VENDOR_CLASS)?.toString('latin1');
}

/**
 * The user classes of option 77. RFC 3004 length-prefixes each; iPXE and some firmware send one bare
 * string, so a value whose prefixes do not add up is read as one class.
 */
export function userClasses(packet: DhcpPacket): string[] {
  const v = packet.options.get(DhcpOption.USER_CLASS);
  if (!v || v.length === 0) return [];
  const classes: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) return [v.toString('latin1')];
    classes.push(v.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return classes;
}

/** The first client architecture of option 93 (RFC 4578), e.g. 0 BIOS, 7 x64 UEFI, 16 x64 UEFI HTTP. */
export function clientArchitecture(packet: DhcpPacket): number | undefined {
  const v = packet.options.get(DhcpOption.CLIENT_ARCH);
  if (!v || v.length < 2 || v.length % 2 !== 0) return undefined;
  return v.readUInt16BE(0);
}

/** The client hardware address as `aa:bb:cc:dd:ee:ff`, when it is Ethernet. */
export function clientMac(packet: DhcpPacket): string | undefined {
  if (packet.htype !== 1 || packet.hlen !== 6) return undefined;
  return [...packet.chaddr].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** What we put in an answer. */
export interface DhcpReply {
  xid: number;
  flags: number;
  chaddr: Buffer;
  htype: number;
  hlen: number;
  ciaddr?: string;
  yiaddr?: string;
  /** Next server: the TFTP server. */
  siaddr?: string;
  giaddr?: string;
  sname?: string;
  file?: string;
  /** Options in the order given; each value at most 255 bytes (longer ones are split, RFC 3396). */
  options: Array<[code: number, value: Buffer]>;
}

/** Encodes a BOOTREPLY; a field that does not fit is an error, never cut short. */
export function encodeDhcpReply(reply: DhcpReply): Buffer {
  const optionBytes: Buffer[] = [];
  for (const [code, value] of reply.options) {
    if (code === DhcpOption.PAD || code === DhcpOption.END) throw new DhcpPacketError(`option ${code} cannot carry a value`);
    for (let at = 0; at < value.length || at === 0; at += 255) {
      const part = value.subarray(at, at + 255);
      optionBytes.push(Buffer.from([code, part.length]), part);
      if (value.length === 0) break;
    }
  }
  optionBytes.push(Buffer.from([DhcpOption.END]));
  const options = Buffer.concat(optionBytes);
  // 300 bytes is the minimum BOOTP size some old clients insist on.
  const buf = Buffer.alloc(Math.max(300, DHCP_HEADER_BYTES + options.length));
  buf[0] = BOOTREPLY;
  buf[1] = reply.htype;
  buf[2] = reply.hlen;
  buf.writeUInt32BE(reply.xid >>> 0, 4);
  buf.writeUInt16BE(reply.flags & 0xffff, 10);
  writeIpv4(buf, 12, reply.ciaddr ?? '0.0.0.0');
  writeIpv4(buf, 16, reply.yiaddr ?? '0.0.0.0');
  writeIpv4(buf, 20, reply.siaddr ?? '0.0.0.0');
  writeIpv4(buf, 24, reply.giaddr ?? '0.0.0.0');
  if (reply.chaddr.length > 16) throw new DhcpPacketError('chaddr is longer than 16 bytes');
  reply.chaddr.copy(buf, 28);
  writeText(buf, 44, 64, reply.sname ?? '', 'sname');
  writeText(buf, 108, 128, reply.file ?? '', 'file');
  buf.writeUInt32BE(MAGIC_COOKIE, 236);
  options.copy(buf, DHCP_HEADER_BYTES);
  return buf;
}

function writeText(buf: Buffer, offset: number, size: number, text: string, field: string): void {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length >= size) throw new DhcpPacketError(`${field} "${text}" does not fit in ${size - 1} bytes`);
  bytes.copy(buf, offset);
}

/** `10.0.0.5` -> 4 bytes; throws on anything else. */
export function ipv4Bytes(address: string): Buffer {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw new DhcpPacketError(`"${address}" is not an IPv4 address`);
  return Buffer.from(parts.map(Number));
}

function writeIpv4(buf: Buffer, offset: number, address: string): void {
  ipv4Bytes(address).copy(buf, offset);
}

/** Builds a DHCP request the way a client does; for tests and tools. */
export function encodeDhcpRequest(request: {
  xid: number;
  chaddr: Buffer;
  ciaddr?: string;
  flags?: number;
  options: Array<[code: number, value: Buffer]>;
}): Buffer {
  const buf = encodeDhcpReply({ xid: request.xid, flags: request.flags ?? 0, chaddr: request.chaddr, htype: 1, hlen: request.chaddr.length, ciaddr: request.ciaddr, options: request.options });
  buf[0] = BOOTREQUEST;
  return buf;
}
