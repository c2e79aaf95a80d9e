import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { encodeError, parseTftpPacket, TftpErrorCode, TftpOpcode, TftpPacketError } from './tftp-packet.ts';
import { MAX_BLOCK_SIZE, TftpTransfer } from './tftp-transfer.ts';

/** How the TFTP server runs; only `root`, `listen` and `logger` are needed. */
export interface TftpServerOptions {
  /** The directory served, read-only. e.g. `/usr/lib/ipxe` */
  root: string;
  /** Where requests arrive. e.g. `{ host: '0.0.0.0', port: 69 }` */
  listen: { host: string; port: number };
  logger: Logger;
  /** Wait for an ACK before sending again, unless the client asks for its own `timeout` (default 1000 ms). */
  retransmitMs?: number;
  /** Sends of one packet before a transfer is given up (default 6). */
  maxAttempts?: number;
  /** Transfers at once; more requests are refused with "busy" (default 256). */
  maxTransfers?: number;
  /** Largest block size granted (default 65464, the RFC 2348 limit; firmware asks for 1432 to 1468). */
  maxBlockSize?: number;
  /** Largest window granted (default 16 blocks). */
  maxWindowSize?: number;
}

/** A running TFTP server. */
export interface TftpServer {
  /** The address actually bound (port 0 picks one). */
  address: { host: string; port: number };
  /** Transfers in progress now. */
  activeTransfers(): number;
  close(): Promise<void>;
}

/** A path segment we serve: no leading dot, no separators, no NUL. */
const SEGMENT = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}$/;

/**
 * Maps a requested file name to a path below `root`, or a reason to refuse it. Absolute names, `..`,
 * backslashes, hidden names and empty segments are refused before the file system is touched.
 */
export function resolveTftpPath(root: string, filename: string): { path: string } | { refused: string } {
  if (filename.startsWith('/') || filename.startsWith('\\')) return { refused: 'absolute paths are not served' };
  if (filename.includes('\\')) return { refused: 'backslashes are not allowed in file names' };
  if (filename.length > 255) return { refused: 'file name too long' };
  const segments = filename.split('/');
  for (const s of segments) {
    if (s === '..' || s === '.') return { refused: 'relative path segments are not served' };
    if (!SEGMENT.test(s)) return { refused: 'file name has characters that are not served' };
  }
  return { path: join(root, ...segments) };
}

/** Starts a read-only TFTP server (RFC 1350, with blksize, tsize, timeout and windowsize options). */
export async function startTftpServer(options: TftpServerOptions): Promise<TftpServer> {
  const settings = {
    retransmitMs: options.retransmitMs ?? 1000,
    maxAttempts: options.maxAttempts ?? 6,
    maxTransfers: options.maxTransfers ?? 256,
    maxBlockSize: Math.min(options.maxBlockSize ?? MAX_BLOCK_SIZE, MAX_BLOCK_SIZE),
    maxWindowSize: options.maxWindowSize ?? 16,
  };
  const logger = options.logger.child({ component: 'tftp' });
  const transfers = new Map<string, TftpTransfer>();
  // No reuseAddr: a second server on the same port must fail, not silently share the requests.
  const socket = createSocket('udp4');
  socket.on('error', (err) => logger.error({ err }, 'tftp: socket error'));

  socket.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let packet;
    try {
      packet = parseTftpPacket(msg);
    } catch (err) {
      if (!(err instanceof TftpPacketError)) throw err;
      logger.debug({ from: key, reason: err.message }, 'tftp: malformed packet dropped');
      return;
    }
    if (packet.op === TftpOpcode.WRQ) {
      reply(socket, rinfo, encodeError(TftpErrorCode.ACCESS_VIOLATION, 'this server is read-only'));
      return;
    }
    if (packet.op !== TftpOpcode.RRQ) {
      reply(socket, rinfo, encodeError(TftpErrorCode.ILLEGAL_OPERATION, 'expected a read request'));
      return;
    }
    // A retransmitted request of a transfer already running is not a new transfer.
    if (transfers.has(key)) return;
    if (transfers.size >= settings.maxTransfers) {
      logger.warn({ from: key, active: transfers.size }, 'tftp: too many transfers; request refused');
      reply(socket, rinfo, encodeError(TftpErrorCode.NOT_DEFINED, 'server busy, try again'));
      return;
    }
    if (packet.mode !== 'octet') {
      reply(socket, rinfo, encodeError(TftpErrorCode.ILLEGAL_OPERATION, `mode ${packet.mode} is not served; use octet (binary)`));
      return;
    }
    const resolved = resolveTftpPath(options.root, packet.filename);
    if ('refused' in resolved) {
      logger.info({ from: key, file: packet.filename, reason: resolved.refused }, 'tftp: request refused');
      reply(socket, rinfo, encodeError(TftpErrorCode.ACCESS_VIOLATION, resolved.refused));
      return;
    }
    const transfer = new TftpTransfer(rinfo, packet.filename, packet.options, settings, options.listen.host, logger, () => transfers.delete(key));
    transfers.set(key, transfer);
    void transfer.start(resolved.path);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${options.listen.host}:${options.listen.port}`;
      if (err.code === 'EADDRINUSE') reject(new Error(`METAL_TFTP_LISTEN: ${where} is already in use`));
      else if (err.code === 'EACCES') reject(new Error(`METAL_TFTP_LISTEN: not allowed to listen on ${where} (ports below 1024 need root or CAP_NET_BIND_SERVICE, which deploy/systemd/metal-pxe.service grants)`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new Error(`METAL_TFTP_LISTEN: ${options.listen.host} is not an address of this host`));
      else reject(err);
    };
    socket.once('error', onError);
    socket.bind(options.listen.port, options.listen.host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  const bound = socket.address();
  logger.info({ root: options.root, listen: `${bound.address}:${bound.port}` }, 'tftp: serving');
  return {
    address: { host: bound.address, port: bound.port },
    activeTransfers: () => transfers.size,
    async close() {
      for (const t of [...transfers.values()]) await t.abort();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

function reply(socket: Socket, to: RemoteInfo, packet: Buffer): void {
  socket.send(packet, to.port, to.address, () => {});
}
