import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../core/logger.ts';
import { toHttpError } from '../http/error-handler.ts';
import { keptScript, type KeptAnswer } from './boot-script-resolver.ts';
import { attachDirectReads, detachDirectReads, directReadsAvailable } from './direct-reads.ts';
import { ENTRY_ROUTE, MACHINE_ROUTE, MAX_SCRIPT_NAME_LENGTH, SCRIPT_SUFFIX, SCRIPT_TYPE, type ScriptAnswers } from './script-routes.ts';

/** What the front answers with, and where it counts what it answered. */
export interface ScriptFrontOptions {
  answers: ScriptAnswers;
  logger: Logger;
  /** Counts an answered request as the listener's metrics hook does for the routes behind it. */
  recordRequest?(route: string, method: string, status: number, seconds: number): void;
}

/** The lean front of a boot listener. */
export interface ScriptFront {
  /** Connections the front holds (not handed to the HTTP server). */
  readonly connections: number;
  /** Stops keeping connections open: idle ones are closed, busy ones after their answer. */
  close(): void;
}

/**
 * The largest request head the front reads itself; a longer one goes to the HTTP server, which
 * answers it by its own limit (431 past 16 KiB).
 */
const MAX_HEAD_BYTES = 8192;
/** Bytes a client may send ahead while its previous request is being answered, before reading pauses. */
const MAX_AHEAD_BYTES = 65536;
const HEAD_END = '\r\n\r\n';
/** Bytes looked at first for the end of a head; a longer head is looked for up to MAX_HEAD_BYTES. */
const FIRST_LOOK_BYTES = 1024;
/** How often the front looks for idle kept-alive connections, milliseconds. */
const IDLE_SWEEP_MS = 250;
/** Answer buffers kept for reuse (one per answer length). */
const MAX_REUSABLE = 256;
/** Answer heads kept as bytes (one per body length seen within a second). */
const MAX_HEADS = 256;
/** A script file name the front decodes itself (percent-escapes included); others go to the router. */
const FILE_CHARS = /^[A-Za-z0-9._~%-]+$/;
/** Query characters of the forms iPXE sends (`mac=52:54:00:12:34:56&uuid=…`); escapes go to the router. */
const QUERY_CHARS = /^[A-Za-z0-9._~:=&-]*$/;
const MACHINES_PREFIX = MACHINE_ROUTE.slice(0, MACHINE_ROUTE.indexOf(':'));
/** 1 at the lengths of the header names parseHead judges (host, expect, upgrade, connection, content-length, transfer-encoding). */
const JUDGED_NAME_LENGTHS = Uint8Array.from({ length: 18 }, (_, n) => (['host', 'expect', 'upgrade', 'connection', 'content-length', 'transfer-encoding'].some((h) => h.length === n) ? 1 : 0));

/** A request the front answers itself. */
interface LeanRequest {
  method: 'GET' | 'HEAD';
  /** undefined: the entry script; else the decoded file name, e.g. `ABC123.ipxe`. */
  file: string | undefined;
  mac: unknown;
  uuid: unknown;
  close: boolean;
}

/**
 * Serves the boot listener's hottest requests, the iPXE scripts (`GET|HEAD /boot.ipxe` and
 * `/nixos/machines/<file>.ipxe`), straight from the TCP connection, and hands everything else to the
 * HTTP server behind it (Fastify: images, enrollment, health, errors) on the same connection and port.
 *
 * A boot storm is thousands of small, identical-looking requests: Node's HTTP machinery (parser,
 * request and response objects, hooks) costs several times the answer itself. The front reads a
 * request head only when it is whole, in one piece, and plainly one of the script requests (strict
 * request line and header grammar, a Host, no body, no upgrade, no escapes it does not decode); at
 * the first request that is anything else, including a partial head, it hands the connection with
 * the unread bytes to the HTTP server, which then owns it for good. So every limit, timeout and
 * error answer of the HTTP server still applies to everything but a well-formed script request, and a
 * script request gets the same bytes (status, headers, body) and the same metrics either way.
 */
export function installScriptFront(server: Server, options: ScriptFrontOptions): ScriptFront {
  const behind = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const open = new Set<LeanConnection>();
  let warnedStreamReads = false;
  // Idle connections are found by a sweep rather than a timer per socket, which every read would re-arm.
  let sweeper: NodeJS.Timeout | undefined;
  const sweepIdle = () => {
    for (const connection of open) connection.sweep(IDLE_SWEEP_MS, server.keepAliveTimeout);
    if (open.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  let closing = false;
  let date = '';
  let dateExpires = 0;

  const httpDate = (now = Date.now()): string => {
    if (now >= dateExpires) {
      date = new Date(now).toUTCString();
      dateExpires = now - (now % 1000) + 1000;
    }
    return date;
  };

  let keepAliveFor = -1;
  let keepAliveText = '';
  /** The keep-alive headers the HTTP server would send, made again only when its keepAliveTimeout changes. */
  const keepAliveHeaders = (): string => {
    if (server.keepAliveTimeout !== keepAliveFor) {
      keepAliveFor = server.keepAliveTimeout;
      keepAliveText = keepAliveFor > 0 ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(keepAliveFor / 1000)}\r\n` : 'Connection: keep-alive\r\n';
    }
    return keepAliveText;
  };

  /** The answer from memory, if the resolver has one (a failure there is left to the full path, which reports it). */
  const answerNow = (request: LeanRequest, file: string) => {
    try {
      return options.answers.machineAnswerNow(file, request.mac, request.uuid);
    } catch {
      return undefined;
    }
  };

  /** The head of a kept-alive `200` script answer, by body length, as bytes; made again each second (its Date). */
  const heads = new Map<number, Buffer>();
  let headsDate = '';
  let headsKeepAlive = '';
  const okHead = (length: number, at: number): Buffer => {
    const now = httpDate(at);
    const keepAlive = keepAliveHeaders();
    if (now !== headsDate || keepAlive !== headsKeepAlive || heads.size >= MAX_HEADS) {
      heads.clear();
      headsDate = now;
      headsKeepAlive = keepAlive;
    }
    let head = heads.get(length);
    if (head === undefined) {
      head = Buffer.from(headText(200, SCRIPT_TYPE, length, now, keepAlive), 'latin1');
      heads.set(length, head);
    }
    return head;
  };

  /**
   * Answer buffers by length, each reused for as long as every write of it completes at once: the same
   * few buffers stay in the cache instead of a fresh slice of Buffer's pool an answer.
   */
  const reusable = new Map<number, Buffer>();
  const reusableBytes = (length: number): Buffer => {
    if (reusable.size >= MAX_REUSABLE) reusable.clear();
    const bytes = Buffer.allocUnsafeSlow(length);
    reusable.set(length, bytes);
    return bytes;
  };

  class LeanConnection {
    /** Bytes read and not yet answered; a view of the shared read buffer only while `onRead` runs. */
    private pending: Buffer | undefined;
    /** Whether `pending` is a view of the shared read buffer (then copied before it is kept). */
    private borrowed = false;
    private busy = false;
    /** Time since the last read, as counted by the idle sweep. */
    private idleMs = 0;
    /** Reads land in the shared buffer (`direct-reads.ts`) rather than arriving as `data` events. */
    private readonly direct: boolean;
    private readonly onData = (chunk: Buffer) => this.received(chunk, false);
    /** One read into the shared buffer (direct reads), valid only until this returns. */
    private readonly onRead = (length: number, buffer: Buffer): void => this.received(buffer.subarray(0, length), true);
    private readonly onEnd = () => this.forget();
    private readonly onError = () => this.socket.destroy();

    constructor(private readonly socket: Socket) {
      socket.setNoDelay(true);
      this.direct = attachDirectReads(socket, this.onRead);
      if (!this.direct && !warnedStreamReads && !directReadsAvailable(socket)) {
        warnedStreamReads = true;
        options.logger.warn({ node: process.version }, 'boot: this Node does not let the script front read connections into its own buffer; reading them through the stream (same answers, more CPU a request)');
      }
      if (!this.direct) socket.on('data', this.onData);
      socket.on('error', this.onError);
      socket.once('close', this.onEnd);
      open.add(this);
      sweeper ??= setInterval(sweepIdle, IDLE_SWEEP_MS).unref();
    }

    /**
     * Bytes read: answered at once when nothing is pending, else queued behind the answer in progress
     * (reading pauses past MAX_AHEAD_BYTES). `borrowed`: a view of the shared read buffer, so whatever
     * is left of it is copied before this returns.
     */
    private received(chunk: Buffer, borrowed: boolean): void {
      this.idleMs = 0;
      if (this.pending) {
        this.pending = Buffer.concat([this.pending, chunk]);
      } else {
        this.pending = chunk;
        this.borrowed = borrowed;
      }
      if (!this.busy) this.serve();
      this.keep();
      if (this.busy && this.pending !== undefined && this.pending.length > MAX_AHEAD_BYTES) this.socket.pause();
    }

    /** Makes `pending` a copy of its own, when it is a view of the shared read buffer. */
    private keep(): void {
      if (this.borrowed && this.pending !== undefined) this.pending = Buffer.from(this.pending);
      this.borrowed = false;
    }

    /**
     * One idle sweep: a connection that has read nothing for the HTTP server's keepAliveTimeout, with
     * no answer pending or unsent, is closed, as the HTTP server closes its own (0: never).
     */
    sweep(elapsedMs: number, limitMs: number): void {
      if (this.busy || this.socket.writableLength > 0) {
        this.idleMs = 0;
        return;
      }
      this.idleMs += elapsedMs;
      if (limitMs > 0 && this.idleMs >= limitMs) this.socket.destroy();
    }

    /** Closes an idle connection now; a busy one closes after its answer, which says `Connection: close`. */
    end(): void {
      if (!this.busy) this.socket.destroy();
    }

    /** Answers every whole request read so far, in order, one at a time. */
    private serve(): void {
      while (this.pending !== undefined && !this.socket.destroyed) {
        // One string of what could be a head (latin1: a character a byte, so offsets are the same): the
        // first KiB, which holds any head iPXE sends, and only if that has no end the whole limit, so
        // many small requests sent ahead cost a bounded look each.
        const { pending } = this;
        let text = pending.toString('latin1', 0, Math.min(pending.length, FIRST_LOOK_BYTES));
        let end = text.indexOf(HEAD_END);
        if (end < 0 && pending.length > FIRST_LOOK_BYTES) {
          text = pending.toString('latin1', 0, Math.min(pending.length, MAX_HEAD_BYTES));
          end = text.indexOf(HEAD_END);
        }
        const request = end < 0 ? undefined : parseHead(text, end);
        if (request === undefined) return this.handOver();
        const restAt = end + HEAD_END.length;
        this.pending = restAt < pending.length ? pending.subarray(restAt) : undefined;
        if (this.pending === undefined) this.borrowed = false;
        const started = performance.now();
        if (request.file === undefined) {
          this.answerBytes(request, ENTRY_ROUTE, options.answers.entryBody, undefined, started);
          continue;
        }
        const kept = answerNow(request, request.file);
        if (kept !== undefined) {
          this.answerBytes(request, MACHINE_ROUTE, kept.body, kept.token, started);
          continue;
        }
        this.busy = true;
        options.answers.machineScript(request.file, request.mac, request.uuid).then(
          ({ script }) => this.answered(request, 200, SCRIPT_TYPE, script, started),
          (err: unknown) => {
            const { status, body } = toHttpError(err);
            if (status >= 500) options.logger.error({ err }, 'request failed');
            this.answered(request, status, 'application/json; charset=utf-8', JSON.stringify(body), started);
          },
        );
        return;
      }
    }

    private answered(request: LeanRequest, status: number, type: string, body: string, started: number): void {
      this.busy = false;
      this.answer(request, MACHINE_ROUTE, status, type, body, started);
      if (this.socket.isPaused() && !this.socket.writableNeedDrain) this.socket.resume();
      this.serve();
    }

    /**
     * A `200` script answer from bytes kept in memory: the head for its length and the body copied into
     * one buffer, with a fresh token minted into its place when the script has one.
     */
    private answerBytes(request: LeanRequest, route: string, body: Buffer, token: KeptAnswer['token'], started: number): void {
      if (this.socket.destroyed) return;
      if (request.close || closing) {
        const text = keptScript(body, token);
        this.answer(request, route, 200, SCRIPT_TYPE, text, started);
        return;
      }
      const now = Date.now();
      const head = okHead(body.length, now);
      if (request.method === 'HEAD') {
        this.socket.write(head);
      } else {
        const length = head.length + body.length;
        const bytes = reusable.get(length) ?? reusableBytes(length);
        // TypedArray's own `set`: Buffer's `copy` makes a view of its source on every call.
        bytes.set(head, 0);
        bytes.set(body, head.length);
        if (token) token.minter.mintInto(bytes, head.length + token.at, now);
        this.socket.write(bytes);
        // Written in full at once (the usual case): the bytes are free again. Else the socket holds
        // them until they are sent, so they are never touched again here.
        if (this.socket.writableLength > 0) reusable.delete(length);
      }
      this.afterAnswer(request, route, 200, false, started);
    }

    private answer(request: LeanRequest, route: string, status: number, type: string, body: string, started: number): void {
      if (this.socket.destroyed) return;
      const close = request.close || closing;
      const head = headText(status, type, Buffer.byteLength(body), httpDate(), close ? 'Connection: close\r\n' : keepAliveHeaders());
      this.socket.write(request.method === 'HEAD' ? head : head + body);
      this.afterAnswer(request, route, status, close, started);
    }

    /** After an answer was written: counted, then the connection closed or, if the client reads slowly, paused. */
    private afterAnswer(request: LeanRequest, route: string, status: number, close: boolean, started: number): void {
      options.recordRequest?.(route, request.method, status, (performance.now() - started) / 1000);
      if (close) {
        this.pending = undefined;
        this.socket.end();
        this.forget();
      } else if (this.socket.writableNeedDrain) {
        // A client that asks faster than it reads is read no further until it has read its answers.
        this.socket.pause();
        this.socket.once('drain', () => {
          if (!this.busy) this.socket.resume();
        });
      }
    }

    /** From here on the HTTP server owns the connection, starting with the bytes not yet answered. */
    private handOver(): void {
      const { socket } = this;
      this.keep();
      this.forget();
      if (this.direct) detachDirectReads(socket);
      else socket.removeListener('data', this.onData);
      socket.removeListener('error', this.onError);
      socket.removeListener('close', this.onEnd);
      socket.pause();
      if (this.pending) socket.unshift(this.pending);
      this.pending = undefined;
      for (const listener of behind) listener.call(server, socket);
      socket.resume();
    }

    private forget(): void {
      open.delete(this);
    }
  }

  server.on('connection', (socket: Socket) => {
    if (closing) {
      for (const listener of behind) listener.call(server, socket);
      return;
    }
    new LeanConnection(socket);
  });

  return {
    get connections() {
      return open.size;
    },
    close() {
      closing = true;
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
      for (const connection of open) connection.end();
    },
  };
}

/** The head of an answer the front writes: what the HTTP server behind it would send for the same answer. */
function headText(status: number, type: string, length: number, date: string, connection: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: ${type}\r\n${status === 200 ? 'cache-control: no-store\r\n' : ''}` +
    `content-length: ${length}\r\nDate: ${date}\r\n${connection}\r\n`
  );
}

/** 1 for the characters of a header name (RFC 9110 `tchar`), by code. */
const TCHAR = Uint8Array.from({ length: 128 }, (_, c) => (/^[!#$%&'*+.^_`|~0-9A-Za-z-]$/.test(String.fromCharCode(c)) ? 1 : 0));
const SP = 0x20;
const HTAB = 0x09;
const TILDE = 0x7e;
const REQUEST_VERSION = ' HTTP/1.1';

/**
 * The request a head asks for, when it is a script request the front answers itself; undefined for
 * anything else (the HTTP server answers it). `head` is the request line and headers, latin1.
 *
 * The grammar is strict: the request line is `GET|HEAD <target> HTTP/1.1`, the target `/` and
 * printable ASCII; each header line a name of RFC 9110 token characters, a colon and a value of
 * printable ASCII and tabs (surrounding spaces and tabs dropped), lines ending in CRLF only.
 * Scanned character by character: a boot storm parses one of these per request.
 */
export function parseHead(head: string, length = head.length): LeanRequest | undefined {
  const scanned = scanHead(head, length);
  return scanned && requestOf(scanned.method, scanned.target, scanned.close);
}

/**
 * A head's method, target and whether it asks to close, when its grammar is the strict one above (else
 * undefined). The head is `head`'s first `length` characters: scanned in place, as a slice would be a
 * string whose every character is read through an indirection.
 */
export function scanHead(head: string, length = head.length): { method: 'GET' | 'HEAD'; target: string; close: boolean } | undefined {
  // The shortest request line there is, `GET / HTTP/1.1`; past this, every read below stays inside the head.
  if (length < REQUEST_VERSION.length + 5) return undefined;
  const firstEnd = crlfWithin(head, 0, length);
  const lineEnd = firstEnd < 0 ? length : firstEnd;
  let method: 'GET' | 'HEAD';
  let at: number;
  if (head.startsWith('GET /')) {
    method = 'GET';
    at = 4;
  } else if (head.startsWith('HEAD /')) {
    method = 'HEAD';
    at = 5;
  } else {
    return undefined;
  }
  const targetStart = at;
  while (at < lineEnd) {
    const c = head.charCodeAt(at);
    if (c === SP) break;
    if (c < 0x21 || c > TILDE) return undefined;
    at++;
  }
  if (lineEnd - at !== REQUEST_VERSION.length || !head.startsWith(REQUEST_VERSION, at)) return undefined;
  const target = head.slice(targetStart, at);

  let hosts = 0;
  let close = false;
  // Each header line runs to the next CRLF or to the end of the head; -1: no lines left.
  let line = firstEnd < 0 ? -1 : firstEnd + 2;
  while (line >= 0) {
    let end = crlfWithin(head, line, length);
    const last = end < 0;
    if (last) end = length;
    // The name: one or more token characters, then a colon.
    let i = line;
    while (i < end) {
      const c = head.charCodeAt(i);
      if (c >= 128 || TCHAR[c] !== 1) break;
      i++;
    }
    if (i === line || i === end || head.charCodeAt(i) !== 0x3a) return undefined;
    const nameLength = i - line;
    // The value: printable ASCII and tabs to the end of the line, without its surrounding spaces and tabs.
    i++;
    while (i < end && (head.charCodeAt(i) === SP || head.charCodeAt(i) === HTAB)) i++;
    const valueStart = i;
    let valueEnd = i;
    for (; i < end; i++) {
      const c = head.charCodeAt(i);
      if (c === SP || c === HTAB) continue;
      if (c < SP || c > TILDE) return undefined;
      valueEnd = i + 1;
    }
    // Only names as long as one the front judges are looked at (User-Agent and the like are not).
    if (nameLength < JUDGED_NAME_LENGTHS.length && JUDGED_NAME_LENGTHS[nameLength] === 1) {
      const name = head.slice(line, line + nameLength).toLowerCase();
      if (name === 'host') {
        if (valueEnd === valueStart) return undefined;
        hosts += 1;
      } else if (name === 'connection') {
        const value = head.slice(valueStart, valueEnd);
        if (value !== 'keep-alive' && value !== 'Keep-Alive') {
          for (const token of value.toLowerCase().split(',')) {
            const t = token.trim();
            if (t === 'close') close = true;
            else if (t !== 'keep-alive' && t !== '') return undefined;
          }
        }
      } else if (name === 'content-length' || name === 'transfer-encoding' || name === 'upgrade' || name === 'expect') {
        return undefined;
      }
    }
    line = last ? -1 : end + 2;
  }
  return hosts === 1 ? { method, target, close } : undefined;
}

/** The first CRLF at or after `from` that lies wholly inside `head`'s first `length` characters, else -1. */
function crlfWithin(head: string, from: number, length: number): number {
  const at = head.indexOf('\r\n', from);
  return at < 0 || at > length - 2 ? -1 : at;
}

/** The script request a target names, or undefined when it is none the front answers itself. */
function requestOf(method: 'GET' | 'HEAD', target: string, close: boolean): LeanRequest | undefined {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (!QUERY_CHARS.test(query)) return undefined;
  if (path === ENTRY_ROUTE) return { method, file: undefined, mac: undefined, uuid: undefined, close };
  if (!path.startsWith(MACHINES_PREFIX)) return undefined;
  const raw = path.slice(MACHINES_PREFIX.length);
  if (raw.length > MAX_SCRIPT_NAME_LENGTH || !raw.endsWith(SCRIPT_SUFFIX) || !FILE_CHARS.test(raw)) return undefined;
  let file = raw;
  if (raw.includes('%')) {
    try {
      file = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    // What the router would see as a path separator, or would not decode the same way, is its to answer.
    if (file.includes('/') || !file.endsWith(SCRIPT_SUFFIX)) return undefined;
  }
  const { mac, uuid } = queryValues(query);
  return { method, file, mac, uuid, close };
}

/** `mac` and `uuid` of an unescaped query: a string, an array when repeated (as the router parses it), or undefined. */
function queryValues(query: string): { mac: unknown; uuid: unknown } {
  let mac: string | string[] | undefined;
  let uuid: string | string[] | undefined;
  if (query === '') return { mac, uuid };
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (key !== 'mac' && key !== 'uuid') continue;
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    if (key === 'mac') mac = mac === undefined ? value : [...(Array.isArray(mac) ? mac : [mac]), value];
    else uuid = uuid === undefined ? value : [...(Array.isArray(uuid) ? uuid : [uuid]), value];
  }
  return { mac, uuid };
}
