import { connect, type Socket } from 'node:net';

/** One HTTP/1.1 response as it came off the wire. */
export interface RawResponse {
  status: number;
  /** Header lines in the order sent, names lower-cased, e.g. `['content-type', 'text/plain; charset=utf-8']`. */
  headers: Array<[string, string]>;
  body: string;
}

/** A client connection that sends raw bytes and reads responses one by one. */
export interface RawConnection {
  socket: Socket;
  send(bytes: string): void;
  /** The next `count` responses (`head` for answers to HEAD, which have no body), within `ms`. */
  responses(count: number, options?: { head?: boolean[]; ms?: number }): Promise<RawResponse[]>;
  /** Resolves when the server closed the connection, within `ms`. */
  closed(ms?: number): Promise<void>;
}

/** Opens a connection to `port` on loopback. */
export async function rawConnect(port: number): Promise<RawConnection> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffer = '';
  let ended = false;
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    buffer += d;
    wake();
  });
  socket.on('close', () => {
    ended = true;
    wake();
  });
  socket.on('error', () => {});
  const until = async (done: () => boolean, ms: number, what: string) => {
    const deadline = setTimeout(wake, ms);
    const started = Date.now();
    try {
      while (!done()) {
        if (Date.now() - started >= ms) throw new Error(`raw-http: no ${what} within ${ms} ms; received ${JSON.stringify(buffer.slice(0, 300))}`);
        if (ended) throw new Error(`raw-http: connection closed before ${what}; received ${JSON.stringify(buffer.slice(0, 300))}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    } finally {
      clearTimeout(deadline);
    }
  };
  const take = (head: boolean): RawResponse | undefined => {
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = buffer.slice(0, end).split('\r\n');
    const headers = lines.map((l) => {
      const colon = l.indexOf(':');
      return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()] as [string, string];
    });
    const length = head ? 0 : Number(headers.find(([n]) => n === 'content-length')?.[1] ?? 0);
    if (buffer.length < end + 4 + length) return undefined;
    const body = buffer.slice(end + 4, end + 4 + length);
    buffer = buffer.slice(end + 4 + length);
    return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1] ?? 0), headers, body };
  };
  return {
    socket,
    send: (bytes) => socket.write(bytes, 'latin1'),
    async responses(count, options = {}) {
      const out: RawResponse[] = [];
      await until(
        () => {
          while (out.length < count) {
            const r = take(options.head?.[out.length] ?? false);
            if (!r) return false;
            out.push(r);
          }
          return true;
        },
        options.ms ?? 10_000,
        `${count} responses`,
      );
      return out;
    },
    async closed(ms = 10_000) {
      await until(() => ended, ms, 'close');
    },
  };
}

/** One request on a fresh connection; the connection is closed afterwards. */
export async function rawRequest(port: number, request: string, head = false): Promise<RawResponse> {
  const c = await rawConnect(port);
  try {
    c.send(request);
    return (await c.responses(1, { head: [head] }))[0]!;
  } finally {
    c.socket.destroy();
  }
}
