import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { assertBootHealth } from '../../core/boot-health.ts';
import type { BootHealth } from '../../core/types.ts';

/** What the check expects the image to send: the build and token on the VM's kernel line. */
export interface ExpectedReport {
  serviceTag: string;
  buildId: number;
  token: string;
}

/** What the listener heard: the report it waited for, or one that proves the image is wrong. */
export type HeardReport = { kind: 'booted'; health: BootHealth | null } | { kind: 'wrong'; reason: string };

/** A running report listener. */
export interface ReportListener {
  /** Settles with the first report that decides the check. */
  readonly heard: Promise<HeardReport>;
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024;

/**
 * The boot check's stand-in for the boot server, on a Unix socket that only the VM's forwarder
 * reaches. It answers what a booted image asks: `POST /api/v1/machines/<tag>/booted` (the report it
 * waits for) and `GET .../reboot-request` (204: nothing to do). A report for another machine or
 * build, or with another token, decides the check too: the image read its kernel line wrong.
 * `onRequest` hears one line per request, for the build log.
 */
export async function listenForReport(socketPath: string, expected: ExpectedReport, onRequest: (line: string) => void): Promise<ReportListener> {
  let settle!: (report: HeardReport) => void;
  const heard = new Promise<HeardReport>((resolve) => (settle = resolve));
  const bootedPath = `/api/v1/machines/${expected.serviceTag}/booted`;
  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => answer(response, 400, { error: 'bad request' }));
  });
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '').split('?')[0] ?? '';
    onRequest(`${request.method ?? '?'} ${printable(path)}`);
    if (request.method === 'GET' && path === `/api/v1/machines/${expected.serviceTag}/reboot-request`) {
      answer(response, 204);
      return;
    }
    if (request.method !== 'POST' || !/^\/api\/v1\/machines\/[^/]+\/booted$/.test(path)) {
      answer(response, 404, { error: 'not found' });
      return;
    }
    const body = await readBody(request);
    if (body === undefined) {
      answer(response, 413, { error: `body larger than ${MAX_BODY} bytes` });
      settle({ kind: 'wrong', reason: `the image sent a booted report larger than ${MAX_BODY} bytes` });
      return;
    }
    const verdict = judge(path, body);
    if (verdict.kind === 'booted') answer(response, 200, { service_tag: expected.serviceTag, build_id: expected.buildId, booted: true });
    else answer(response, verdict.status, { error: verdict.reason });
    settle(verdict.kind === 'booted' ? verdict : { kind: 'wrong', reason: verdict.reason });
  };
  const judge = (path: string, body: string): { kind: 'booted'; health: BootHealth | null } | { kind: 'wrong'; status: number; reason: string } => {
    const wrong = (status: number, reason: string) => ({ kind: 'wrong' as const, status, reason });
    if (path !== bootedPath) return wrong(403, `the image reported as machine ${printable(path.split('/')[4] ?? '')}, not ${expected.serviceTag}`);
    let report: unknown;
    try {
      report = JSON.parse(body);
    } catch {
      return wrong(400, 'the image sent a booted report that is not JSON');
    }
    if (typeof report !== 'object' || report === null) return wrong(400, 'the image sent a booted report that is not a JSON object');
    const { build_id: buildId, token, health } = report as { build_id?: unknown; token?: unknown; health?: unknown };
    if (buildId !== expected.buildId) return wrong(403, `the image reported build ${printable(JSON.stringify(buildId) ?? 'nothing')}, not ${expected.buildId}`);
    if (typeof token !== 'string' || !sameText(token, expected.token)) return wrong(403, 'the image sent another token than the one on its kernel line');
    try {
      return { kind: 'booted', health: health === undefined ? null : assertBootHealth(health) };
    } catch (err) {
      return wrong(400, `the image sent a booted report with a bad health result: ${(err as Error).message}`);
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    heard,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(response: ServerResponse, status: number, body?: object): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
  response.end(text);
}

/** The request body as text, or undefined when it is larger than MAX_BODY. */
function readBody(request: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        resolve(undefined);
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What the image sent, fit for one log line: printable ASCII, at most 80 characters. */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}
