import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/** One request a receiver got, and what it answered. */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** The X-Metal-Signature matched the HMAC of `<timestamp>.<body>` with the receiver's secret. */
  signatureValid: boolean;
  answered: number;
}

/** A webhook receiver on loopback that checks every signature; `answer` decides each status. */
export interface Receiver {
  url: string;
  received: Received[];
  answer: (r: Omit<Received, 'answered'>) => number | { status: number; headers?: Record<string, string>; body?: string };
  /** Resolves once `until(received)` holds, re-checked on every request; rejects after `timeoutMs`. */
  waitFor(what: string, until: (received: Received[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Verifies a delivery the way a receiver should (docs/observability.md). */
export function verifySignature(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const timestamp = String(headers['x-metal-timestamp'] ?? '');
  const given = Buffer.from(String(headers['x-metal-signature'] ?? ''));
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export async function startReceiver(secret: string, answer: Receiver['answer'] = () => 200): Promise<Receiver> {
  const waiters = new Set<() => void>();
  const receiver: Receiver = {
    url: '',
    received: [],
    answer,
    async waitFor(what, until, timeoutMs = 60_000) {
      if (until(receiver.received)) return;
      await new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!until(receiver.received)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: ${what} did not happen within ${timeoutMs} ms (${receiver.received.length} requests: ${receiver.received.map((r) => r.answered).join(',')})`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const seen = { headers: req.headers, body, signatureValid: verifySignature(secret, req.headers, body) };
      const a = receiver.answer(seen);
      const reply = typeof a === 'number' ? { status: a } : a;
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? `status ${reply.status}`);
      receiver.received.push({ ...seen, answered: reply.status });
      for (const w of [...waiters]) w();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  return receiver;
}
