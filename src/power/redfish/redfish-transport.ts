import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { describeAddress, type BmcAddress, type RedfishTls } from '../bmc-target.ts';
import { PowerError, trimAnswer } from '../power-error.ts';

/** A Redfish answer larger than this is not a Redfish answer. */
const MAX_BODY = 1024 * 1024;

export interface RedfishHttpRequest {
  address: BmcAddress;
  tls: RedfishTls;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Absolute path on the BMC, e.g. `/redfish/v1/Systems/1`. */
  path: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface RedfishHttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME|ERR_TLS_PIN/;
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * One HTTPS request to a BMC with its TLS policy: a pinned SHA-256 fingerprint (checked before a byte
 * is sent), a CA bundle, the system's CAs, or (verify false) no check. Failures become PowerErrors.
 */
export function sendRedfishRequest(req: RedfishHttpRequest): Promise<RedfishHttpResponse> {
  const where = describeAddress(req.address);
  return new Promise((resolve, reject) => {
    let done = false;
    const settle = (err: Error | undefined, res?: RedfishHttpResponse) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(res!);
    };
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body), 'utf8');
    const outgoing = httpsRequest({
      host: req.address.host,
      port: req.address.port,
      method: req.method,
      path: req.path,
      headers: {
        accept: 'application/json',
        'odata-version': '4.0',
        ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        ...req.headers,
      },
      // Asynchronous: the request gets its socket only once the TLS policy has accepted the certificate.
      createConnection: ((_options: unknown, oncreate: (err: Error | null, socket?: Duplex) => void) => {
        openTls(req.address, req.tls, oncreate);
        return undefined;
      }) as unknown as RequestOptions['createConnection'],
    });
    const fail = (err: NodeJS.ErrnoException) => settle(classifyTransportError(err, where));
    const timeoutError = () => new PowerError('timeout', `redfish: no answer from ${where} in time`);
    const onAbort = () => {
      settle(timeoutError());
      outgoing.destroy();
    };
    const timer = setTimeout(onAbort, req.timeoutMs);
    if (req.signal?.aborted) {
      onAbort();
      return;
    }
    req.signal?.addEventListener('abort', onAbort, { once: true });
    outgoing.on('error', fail);
    outgoing.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) {
          settle(new PowerError('bad_answer', `redfish: ${where} sent more than ${MAX_BODY} bytes`));
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => settle(undefined, { status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    outgoing.end(payload);
  });
}

function openTls(address: BmcAddress, tls: RedfishTls, oncreate: (err: Error | null, socket?: Duplex) => void): void {
  const pinned = tls.fingerprint !== undefined;
  const options: ConnectionOptions = {
    host: address.host,
    port: address.port,
    rejectUnauthorized: tls.verify && !pinned,
    ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
    ...(tls.caBundle && !pinned ? { ca: tls.caBundle } : {}),
  };
  let socket: TLSSocket;
  const onError = (err: Error) => {
    socket.destroy();
    oncreate(err);
  };
  try {
    socket = tlsConnect(options);
  } catch (err) {
    oncreate(err as Error);
    return;
  }
  socket.once('error', onError);
  socket.once('secureConnect', () => {
    socket.removeListener('error', onError);
    if (pinned) {
      const seen = socket.getPeerCertificate().fingerprint256;
      if (normalizeFingerprint(seen ?? '') !== normalizeFingerprint(tls.fingerprint ?? '')) {
        socket.destroy();
        const err = new Error(`the certificate's SHA-256 fingerprint ${seen ?? '(none)'} is not the pinned one`) as NodeJS.ErrnoException;
        err.code = 'ERR_TLS_PIN_MISMATCH';
        oncreate(err);
        return;
      }
    }
    oncreate(null, socket);
  });
}

/** Maps a socket, TLS or HTTP parser error to the kind of BMC failure it means. */
export function classifyTransportError(err: NodeJS.ErrnoException, where: string): PowerError {
  if (err instanceof PowerError) return err;
  const code = err.code ?? '';
  if (TLS_ERROR.test(code)) {
    return new PowerError('tls_untrusted', `redfish: the certificate of ${where} is not trusted (${trimAnswer(err.message)}); pin its fingerprint, give a CA bundle, or turn verify_tls off`);
  }
  if (UNREACHABLE.has(code)) return new PowerError('unreachable', `redfish: ${where} is unreachable (${code})`);
  return new PowerError('bad_answer', `redfish: ${where} did not answer HTTPS properly (${trimAnswer(code ? `${code}: ${err.message}` : err.message)})`);
}

function normalizeFingerprint(value: string): string {
  return value.replaceAll(':', '').toUpperCase();
}
