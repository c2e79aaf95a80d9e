import { encodeAck, encodeReadRequest, parseTftpPacket, TftpOpcode, type TftpPacket } from '../tftp-packet.ts';
import { UdpProbe } from './udp-probe.ts';

/** How a raw test download went. */
export interface RawDownload {
  data: Buffer;
  /** The OACK's options, when the server sent one. */
  oack?: Map<string, string>;
  /** Every DATA block number as received, duplicates included. */
  blocksReceived: number[];
  /** The transfer's server port (its TID). */
  serverPort: number;
}

/**
 * A TFTP client for tests, written against the RFCs: it can withhold the ACK of one block once, to
 * see the server send it again. Every wait is bounded by `waitMs`.
 */
export async function rawTftpDownload(
  port: number,
  filename: string,
  options: { requestOptions?: Record<string, string>; dropAckOf?: number; waitMs?: number } = {},
): Promise<RawDownload> {
  const waitMs = options.waitMs ?? 5000;
  const probe = await UdpProbe.open();
  try {
    const requestOptions = options.requestOptions ?? {};
    await probe.send(encodeReadRequest(filename, 'octet', requestOptions), port);
    const chunks: Buffer[] = [];
    const blocksReceived: number[] = [];
    let oack: Map<string, string> | undefined;
    let blockSize = 512;
    let windowSize = 1;
    let expected = 1;
    let serverPort = 0;
    let dropped = false;
    let sinceAck = 0;
    for (;;) {
      const got = await probe.receive(waitMs);
      if (!got) throw new Error(`tftp test client: nothing received for ${waitMs} ms (expecting block ${expected})`);
      if (serverPort === 0) serverPort = got.rinfo.port;
      const packet: TftpPacket = parseTftpPacket(got.msg);
      if (packet.op === TftpOpcode.ERROR) throw Object.assign(new Error(`tftp error ${packet.code}: ${packet.message}`), { tftpCode: packet.code });
      if (packet.op === TftpOpcode.OACK) {
        oack = packet.options;
        blockSize = Number(packet.options.get('blksize') ?? 512);
        windowSize = Number(packet.options.get('windowsize') ?? 1);
        await probe.send(encodeAck(0), serverPort);
        continue;
      }
      if (packet.op !== TftpOpcode.DATA) throw new Error(`tftp test client: unexpected opcode ${packet.op}`);
      blocksReceived.push(packet.block);
      if (packet.block !== (expected & 0xffff)) continue; // a duplicate or out of order: wait for the right one
      chunks.push(Buffer.from(packet.data));
      const last = packet.data.length < blockSize;
      expected++;
      sinceAck++;
      if (!last && sinceAck < windowSize) continue;
      sinceAck = 0;
      if (options.dropAckOf === packet.block && !dropped) {
        dropped = true; // withhold this ACK once; the server must send the block again
        expected--;
        chunks.pop();
        continue;
      }
      await probe.send(encodeAck(packet.block), serverPort);
      if (last) return { data: Buffer.concat(chunks), oack, blocksReceived, serverPort };
    }
  } finally {
    await probe.close();
  }
}
