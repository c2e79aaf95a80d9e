import { describeAddress, type RedfishTarget } from '../bmc-target.ts';
import { PowerError, trimAnswer } from '../power-error.ts';
import { sendRedfishRequest, type RedfishHttpResponse } from './redfish-transport.ts';

/** The DMTF standard location of the session collection (Redfish 1.0 §13.3.4). */
export const SESSIONS_PATH = '/redfish/v1/SessionService/Sessions';

/** A JSON object as the BMC sent it. */
export type RedfishResource = Record<string, unknown>;

export interface RedfishAnswer {
  status: number;
  body: RedfishResource | undefined;
  etag: string | undefined;
}

/**
 * Authenticated JSON requests to one BMC: HTTP basic on every request, or a session (X-Auth-Token)
 * opened on first use, opened again once when the BMC forgets it, and deleted by close().
 */
export class RedfishClient {
  private token: string | undefined;
  private sessionPath: string | undefined;
  private readonly where: string;

  constructor(
    private readonly target: RedfishTarget,
    private readonly timeoutMs: number,
  ) {
    this.where = describeAddress(target.address);
  }

  get(path: string, signal: AbortSignal): Promise<RedfishAnswer> {
    return this.send('GET', path, undefined, {}, signal);
  }

  post(path: string, body: unknown, signal: AbortSignal): Promise<RedfishAnswer> {
    return this.send('POST', path, body, {}, signal);
  }

  patch(path: string, body: unknown, signal: AbortSignal, etag?: string): Promise<RedfishAnswer> {
    return this.send('PATCH', path, body, etag ? { 'if-match': etag } : {}, signal);
  }

  /** Logs out of the session, if one is open. Never throws. */
  async close(): Promise<void> {
    const { token, sessionPath } = this;
    this.token = undefined;
    this.sessionPath = undefined;
    if (!token || !sessionPath) return;
    try {
      await this.raw('DELETE', sessionPath, undefined, { 'x-auth-token': token }, AbortSignal.timeout(this.timeoutMs));
    } catch {
      // The session times out on the BMC by itself.
    }
  }

  private async send(method: 'GET' | 'POST' | 'PATCH', path: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<RedfishAnswer> {
    if (this.target.auth === 'basic') {
      const basic = Buffer.from(`${this.target.username}:${this.target.password.reveal()}`, 'utf8').toString('base64');
      return this.answer(await this.raw(method, path, body, { ...headers, authorization: `Basic ${basic}` }, signal));
    }
    const hadToken = this.token !== undefined;
    let res = await this.raw(method, path, body, { ...headers, 'x-auth-token': await this.login(signal) }, signal);
    if (res.status === 401 && hadToken) {
      this.token = undefined;
      res = await this.raw(method, path, body, { ...headers, 'x-auth-token': await this.login(signal) }, signal);
    }
    return this.answer(res);
  }

  private async login(signal: AbortSignal): Promise<string> {
    if (this.token) return this.token;
    const res = await this.raw('POST', SESSIONS_PATH, { UserName: this.target.username, Password: this.target.password.reveal() }, {}, signal);
    if (res.status === 401 || res.status === 403) throw this.authFailed(res);
    if (res.status < 200 || res.status >= 300) throw this.failure(res, 'opening a session');
    const token = header(res, 'x-auth-token');
    if (!token) throw new PowerError('bad_answer', `redfish: ${this.where} opened a session without an X-Auth-Token`);
    this.token = token;
    const location = header(res, 'location');
    this.sessionPath = location ? redfishPath(location, this.where) : undefined;
    return token;
  }

  private raw(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<RedfishHttpResponse> {
    return sendRedfishRequest({ address: this.target.address, tls: this.target.tls, method, path, headers, body, timeoutMs: this.timeoutMs, signal });
  }

  private answer(res: RedfishHttpResponse): RedfishAnswer {
    if (res.status === 401 || res.status === 403) throw this.authFailed(res);
    if (res.status < 200 || res.status >= 300) throw this.failure(res);
    let body: RedfishResource | undefined;
    if (res.text.trim() !== '') {
      const parsed = parseJson(res.text);
      if (parsed === undefined) {
        throw new PowerError('bad_answer', `redfish: ${this.where} answered ${res.status} with something that is not a JSON object: ${trimAnswer(res.text).slice(0, 80)}`);
      }
      body = parsed;
    }
    return { status: res.status, body, etag: header(res, 'etag') };
  }

  private authFailed(res: RedfishHttpResponse): PowerError {
    const said = redfishMessage(res.text);
    const what = res.status === 403 ? 'refused the request: the account lacks the privilege' : 'refused the user name or password';
    return new PowerError('auth_failed', `redfish: ${this.where} ${what} (HTTP ${res.status}${said ? `: ${said}` : ''})`, said);
  }

  private failure(res: RedfishHttpResponse, doing?: string): PowerError {
    const said = redfishMessage(res.text);
    const during = doing ? ` when ${doing}` : '';
    if (res.status >= 500) return new PowerError('bmc_failed', `redfish: ${this.where} failed${during} (HTTP ${res.status}${said ? `: ${said}` : ''})`, said);
    if (res.status >= 400) return new PowerError('refused', `redfish: ${this.where} said no${during} (HTTP ${res.status}${said ? `: ${said}` : ''})`, said);
    return new PowerError('bad_answer', `redfish: ${this.where} answered HTTP ${res.status}${during}`);
  }
}

function header(res: RedfishHttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseJson(text: string): RedfishResource | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as RedfishResource) : undefined;
  } catch {
    return undefined;
  }
}

/** The message of a Redfish error body (`error.@Message.ExtendedInfo[0].Message`, else `error.message`). */
export function redfishMessage(text: string): string | undefined {
  const body = parseJson(text);
  const error = body?.error as { message?: unknown; '@Message.ExtendedInfo'?: Array<{ Message?: unknown }> } | undefined;
  const extended = Array.isArray(error?.['@Message.ExtendedInfo']) ? error['@Message.ExtendedInfo'][0]?.Message : undefined;
  const message = typeof extended === 'string' ? extended : typeof error?.message === 'string' ? error.message : undefined;
  return message ? trimAnswer(message) : text.trim() && !body ? trimAnswer(text).slice(0, 80) : undefined;
}

/**
 * A link the BMC gave (`@odata.id`, `target`, a session's Location) as a path on the same BMC. Absolute
 * URLs are reduced to their path (the client never follows a link to another host); anything outside
 * `/redfish/v1/` or with `..` is not a Redfish link.
 */
export function redfishPath(link: unknown, where: string): string {
  let path = typeof link === 'string' ? link : '';
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      path = '';
    }
  }
  if (!path.startsWith('/redfish/v1/') || path.includes('..') || /[?#\s]/.test(path) || path.length > 512) {
    throw new PowerError('bad_answer', `redfish: ${where} gave a link that is not a Redfish path: ${trimAnswer(String(link)).slice(0, 80)}`);
  }
  return path;
}
