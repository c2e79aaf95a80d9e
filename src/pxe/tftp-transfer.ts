import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../core/logger.ts';
import { encodeData, encodeError, encodeOack, parseTftpPacket, TftpErrorCode, TftpOpcode } from './tftp-packet.ts';

const DEFAULT_BLOCK_SIZE = 512;
const MIN_BLOCK_SIZE = 8;
/** The largest block size of RFC 2348. */
export const MAX_BLOCK_SIZE = 65464;

/** The server's limits a transfer keeps to. */
export type TransferSettings = { retransmitMs: number; maxAttempts: number; maxBlockSize: number; maxWindowSize: number };

/** One read transfer on its own socket (its TID), from request to the last ACK. */
export class TftpTransfer {
  private socket: Socket | undefined;
  private file: FileHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private blockSize = DEFAULT_BLOCK_SIZE;
  private windowSize = 1;
  private timeoutMs: number;
  private size = 0;
  /** Blocks in the file: the last one is shorter than blockSize, possibly empty. */
  private lastBlock = 1;
  /** The highest block the client acknowledged (0: the OACK, or nothing yet). */
  private acked = 0;
  private attempts = 0;
  private oack: Buffer | undefined;
  private finished = false;
  private lastSend: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: RemoteInfo,
    private readonly filename: string,
    private readonly requested: Map<string, string>,
    private readonly settings: TransferSettings,
    private readonly host: string,
    private readonly logger: Logger,
    private readonly onEnd: () => void,
  ) {
    this.timeoutMs = settings.retransmitMs;
  }

  async start(path: string): Promise<void> {
    try {
      this.socket = createSocket('udp4');
      this.socket.on('error', (err) => this.fail(`socket error: ${err.message}`));
      this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
      await new Promise<void>((resolve) => this.socket!.bind(0, this.host, () => resolve()));
      try {
        this.file = await open(path, 'r');
        const stats = await this.file.stat();
        if (!stats.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
        this.size = stats.size;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const notFound = code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
        this.send(encodeError(notFound ? TftpErrorCode.FILE_NOT_FOUND : TftpErrorCode.ACCESS_VIOLATION, notFound ? `${this.filename} not found` : `${this.filename} cannot be read`));
        this.logger.info({ client: this.clientName, file: this.filename, code }, 'tftp: file not served');
        return void this.end();
      }
      if (this.finished) return;
      const accepted = this.negotiate();
      this.lastBlock = Math.floor(this.size / this.blockSize) + 1;
      if (this.lastBlock > 0xffff * 4096) {
        this.send(encodeError(TftpErrorCode.NOT_DEFINED, 'file too large for this block size'));
        return void this.end();
      }
      this.logger.debug({ client: this.clientName, file: this.filename, size: this.size, blksize: this.blockSize, windowsize: this.windowSize }, 'tftp: transfer starts');
      if (accepted.size > 0) {
        this.oack = encodeOack(accepted);
        this.send(this.oack);
        this.arm();
      } else {
        await this.sendWindow();
      }
    } catch (err) {
      this.fail(`could not start: ${(err as Error).message}`);
    }
  }

  private get clientName(): string {
    return `${this.client.address}:${this.client.port}`;
  }

  /** Grants the options we support, within our limits; others are left out of the OACK (RFC 2347). */
  private negotiate(): Map<string, string> {
    const accepted = new Map<string, string>();
    const integer = (name: string, min: number, max: number): number | undefined => {
      const v = this.requested.get(name);
      if (v === undefined || !/^\d{1,6}$/.test(v)) return undefined;
      const n = Number(v);
      return n >= min && n <= max ? n : undefined;
    };
    const blksize = integer('blksize', MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
    if (blksize !== undefined) {
      this.blockSize = Math.min(blksize, this.settings.maxBlockSize);
      accepted.set('blksize', String(this.blockSize));
    }
    if (this.requested.get('tsize') === '0') accepted.set('tsize', String(this.size));
    const timeout = integer('timeout', 1, 255);
    if (timeout !== undefined) {
      this.timeoutMs = timeout * 1000;
      accepted.set('timeout', String(timeout));
    }
    const windowsize = integer('windowsize', 1, 65535);
    if (windowsize !== undefined) {
      this.windowSize = Math.min(windowsize, this.settings.maxWindowSize);
      accepted.set('windowsize', String(this.windowSize));
    }
    return accepted;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.finished) return;
    if (rinfo.address !== this.client.address || rinfo.port !== this.client.port) {
      // RFC 1350: a packet from another TID gets an error and does not disturb this transfer.
      this.socket?.send(encodeError(TftpErrorCode.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address, () => {});
      return;
    }
    let packet;
    try {
      packet = parseTftpPacket(msg);
    } catch {
      return;
    }
    if (packet.op === TftpOpcode.ERROR) {
      // Firmware often asks for tsize, then aborts to request again with its own block size.
      this.logger.debug({ client: this.clientName, file: this.filename, code: packet.code, message: packet.message }, 'tftp: client ended the transfer');
      return void this.end();
    }
    if (packet.op !== TftpOpcode.ACK) return;
    if (this.oack) {
      // The options are agreed when the client acknowledges block 0.
      if (packet.block !== 0) return;
      this.oack = undefined;
      this.attempts = 0;
      return void this.sendWindow();
    }
    const block = this.ackedBlock(packet.block);
    // An old or duplicate ACK is ignored: answering it would double every packet (the Sorcerer's Apprentice bug).
    if (block === undefined || block <= this.acked) return;
    this.acked = block;
    this.attempts = 0;
    if (this.acked >= this.lastBlock) {
      this.logger.debug({ client: this.clientName, file: this.filename, size: this.size }, 'tftp: transfer complete');
      return void this.end();
    }
    void this.sendWindow();
  }

  /** The absolute block an ACK's 16-bit number stands for: the one within the window now in flight. */
  private ackedBlock(wire: number): number | undefined {
    for (let n = this.acked; n <= Math.min(this.acked + this.windowSize, this.lastBlock); n++) {
      if ((n & 0xffff) === wire) return n;
    }
    return undefined;
  }

  private async sendWindow(): Promise<void> {
    this.clearTimer();
    const first = this.acked + 1;
    const last = Math.min(this.acked + this.windowSize, this.lastBlock);
    const ackedWhenStarted = this.acked;
    for (let n = first; n <= last; n++) {
      const data = Buffer.alloc(Math.max(0, Math.min(this.blockSize, this.size - (n - 1) * this.blockSize)));
      if (data.length > 0) {
        const { bytesRead } = await this.file!.read(data, 0, data.length, (n - 1) * this.blockSize);
        if (bytesRead !== data.length) return this.fail('the file changed while it was sent');
      }
      // The client may have acknowledged (or ended) while we read.
      if (this.finished || this.acked !== ackedWhenStarted) return;
      this.send(encodeData(n, data));
    }
    this.arm();
  }

  private arm(): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
  }

  private onTimeout(): void {
    if (this.finished) return;
    this.attempts++;
    if (this.attempts >= this.settings.maxAttempts) {
      this.logger.warn({ client: this.clientName, file: this.filename, block: this.acked + 1 }, `tftp: no answer after ${this.attempts} sends; transfer given up`);
      this.send(encodeError(TftpErrorCode.NOT_DEFINED, 'timed out'));
      return void this.end();
    }
    this.logger.debug({ client: this.clientName, file: this.filename, block: this.acked + 1, attempt: this.attempts + 1 }, 'tftp: retransmitting');
    if (this.oack) {
      this.send(this.oack);
      this.arm();
    } else {
      void this.sendWindow();
    }
  }

  private send(packet: Buffer): void {
    const socket = this.socket;
    if (!socket) return;
    // Kept so that closing the socket waits for the last packet (an error must reach the client).
    this.lastSend = new Promise((resolve) => socket.send(packet, this.client.port, this.client.address, () => resolve()));
  }

  private fail(reason: string): void {
    if (this.finished) return;
    this.logger.warn({ client: this.clientName, file: this.filename }, `tftp: transfer failed: ${reason}`);
    this.send(encodeError(TftpErrorCode.NOT_DEFINED, 'transfer failed'));
    void this.end();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  async abort(): Promise<void> {
    await this.end();
  }

  private async end(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.clearTimer();
    this.onEnd();
    const socket = this.socket;
    this.socket = undefined;
    await this.lastSend;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    await this.file?.close().catch(() => {});
  }
}
