/** The REST API as the `metal` client commands see it: one request function, timeouts, and API errors as messages. */

/** An error the command line prints as `metal: <message>` and exits non-zero for. */
export class CliError extends Error {
  constructor(
    message: string,
    /** The process exit code. */
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The API answered with an error body `{"error":{"code","message"}}` (or something unexpected). */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    /** e.g. `not_found` */
    readonly code: string,
    /** The API's own message, e.g. `machine ABC123 not found`. */
    readonly apiMessage: string,
  ) {
    super(status === 401 ? NOT_LOGGED_IN : apiMessage);
    this.name = 'ApiError';
  }
}

/** What 401 means for a person at a terminal. */
export const NOT_LOGGED_IN = 'not logged in or token expired: run metal login';

/** Where the API is and who calls it. */
export interface ApiClientOptions {
  /** The API's base URL, e.g. `http://metal.example:8080`. */
  url: string;
  token?: string | undefined;
  /** How long to wait for an answer (headers and body) of an ordinary request. */
  timeoutMs?: number;
}

/** One request's query, body, headers and limits. */
export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Overrides the client's timeout for this request. */
  timeoutMs?: number;
  /** The timeout covers only the response headers, not a body streamed for as long as the server likes. */
  streaming?: boolean;
  /** Stops the request early (e.g. when the person presses Ctrl-C). */
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Checks that a base URL is an absolute http(s) URL and normalises it (no trailing slash). */
export function normaliseBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`invalid server URL ${JSON.stringify(value)}: expected e.g. http://metal.example:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`invalid server URL ${JSON.stringify(value)}: only http and https are supported`);
  }
  if (url.username || url.password) throw new CliError('the server URL must not contain credentials; use metal login');
  url.search = '';
  url.hash = '';
  return url.toString().replace(/\/+$/, '');
}

/** A path segment from a user-given value (service tag, name), so it can never change the route. */
export function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

/** Talks to one Metal Enrollment server. */
export class ApiClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.url = normaliseBaseUrl(options.url);
    this.#token = options.token || undefined;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('GET', path, options);
  }

  post<T>(path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('POST', path, { ...options, body });
  }

  put<T>(path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('PUT', path, { ...options, body });
  }

  delete(path: string, options: RequestOptions = {}): Promise<void> {
    return this.json<void>('DELETE', path, options);
  }

  /** Sends a request and returns the parsed JSON body (undefined for 204); throws ApiError for any error status. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { response, done } = await this.send(method, path, options);
    try {
      const text = await response.text();
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new CliError(`${method} ${path}: the server answered ${response.status} with something that is not JSON`);
      }
    } catch (err) {
      throw this.#translate(err, method, path);
    } finally {
      done();
    }
  }

  /**
   * Sends a request and returns the response once its headers arrive, for streaming the body.
   * Throws ApiError for an error status; call `done()` when finished reading.
   */
  async send(method: string, path: string, options: RequestOptions = {}): Promise<{ response: Response; done: () => void }> {
    const url = new URL(this.url + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new TimeoutError()), timeoutMs);
    const done = () => clearTimeout(timer);
    const signal = options.signal ? AbortSignal.any([controller.signal, options.signal]) : controller.signal;
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body, signal, redirect: 'error' });
    } catch (err) {
      done();
      throw this.#translate(err, method, path, timeoutMs);
    }
    if (options.streaming) done();
    if (!response.ok) {
      try {
        throw await errorFromResponse(response);
      } finally {
        done();
      }
    }
    return { response, done };
  }

  #translate(err: unknown, method: string, path: string, timeoutMs = this.#timeoutMs): Error {
    if (err instanceof CliError) return err;
    if (err instanceof TimeoutError || (err instanceof DOMException && err.name === 'TimeoutError')) {
      return new CliError(`${method} ${path}: no answer from ${this.url} within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`);
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    return new CliError(`cannot reach ${this.url}: ${reason}`);
  }
}

class TimeoutError extends Error {
  constructor() {
    super('timeout');
    this.name = 'TimeoutError';
  }
}

/** Reads an error response into an ApiError carrying the API's own message. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let code = 'http_' + response.status;
  let message = `the server answered ${response.status} ${response.statusText}`.trim();
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') code = parsed.error.code;
    if (typeof parsed.error?.message === 'string') message = parsed.error.message;
  } catch {
    // not the API's error body: keep the status line
  }
  return new ApiError(response.status, code, message);
}
