import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/** A UDP socket for tests that sends raw packets and waits for answers, each wait bounded. */
export class UdpProbe {
  private readonly queue: Array<{ msg: Buffer; rinfo: RemoteInfo }> = [];
  private waiter: (() => void) | undefined;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.queue.push({ msg, rinfo });
      this.waiter?.();
    });
  }

  /**
   * Opens a socket on `host` (default 127.0.0.1) and a free port (or the one given, shared with other
   * sockets that ask to share it). Only a given port is opened with SO_REUSEADDR: on Linux two such
   * sockets bound to port 0 can be handed the same ephemeral port, and two probes on one port are one
   * client to a server (one of them hears nothing).
   */
  static async open(host = '127.0.0.1', port = 0, options: { broadcast?: boolean } = {}): Promise<UdpProbe> {
    const socket = createSocket({ type: 'udp4', reuseAddr: port !== 0 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => resolve());
    });
    if (options.broadcast) socket.setBroadcast(true);
    return new UdpProbe(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(packet: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(packet, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next packet received, or undefined when none comes within `timeoutMs`. */
  async receive(timeoutMs: number): Promise<{ msg: Buffer; rinfo: RemoteInfo } | undefined> {
    if (this.queue.length > 0) return this.queue.shift();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiter = done;
    });
    this.waiter = undefined;
    return this.queue.shift();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
