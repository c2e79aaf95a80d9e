import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, RateLimitedError, type ErrorCode } from '../core/errors.ts';
import { PowerError } from '../power/power-error.ts';
import { powerErrorStatus } from '../power/power-error-status.ts';
import { isDatabaseUnavailable } from '../storage/unavailable.ts';

/** The JSON body of every API error. */
export interface ErrorBody {
  /** A domain error's code, or a BMC failure's (`bmc_auth_failed`, `bmc_timeout`, …). */
  error: { code: ErrorCode | `bmc_${string}`; message: string; details?: Record<string, unknown> };
}

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/** How long a client is asked to wait when the database does not answer, seconds. */
const UNAVAILABLE_RETRY_SECONDS = 5;

/** Fastify's own error codes that are the client's fault, as domain codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_input',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_input',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_input',
  FST_ERR_VALIDATION: 'invalid_input',
};

/** Maps any thrown error to an HTTP status and body. Internal details never reach the client. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody; retryAfter?: number } {
  if (err instanceof DomainError) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.details) body.error.details = err.details;
    return {
      status: STATUS[err.code],
      body,
      ...(err instanceof RateLimitedError ? { retryAfter: err.retryAfterSeconds } : {}),
    };
  }
  if (err instanceof PowerError) {
    // The BMC's answer (never a credential): 409 it said no, 502 it failed us, 504 it did not answer.
    return {
      status: powerErrorStatus(err.kind),
      body: { error: { code: err.code as `bmc_${string}`, message: err.message, ...(err.bmcAnswer ? { details: { bmc_answer: err.bmcAnswer } } : {}) } },
    };
  }
  const fe = err as Partial<FastifyError>;
  if (fe.validation) {
    return { status: 400, body: { error: { code: 'invalid_input', message: `invalid request: ${describeValidation(fe)}` } } };
  }
  const code = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (code) return { status: STATUS[code], body: { error: { code, message: fe.message ?? code } } };
  if (fe.code === 'FST_ERR_NOT_FOUND') return { status: 404, body: { error: { code: 'not_found', message: 'no such route' } } };
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: { code: 'invalid_input', message: fe.message ?? 'bad request' } } };
  }
  if (isDatabaseUnavailable(err)) {
    return { status: 503, body: { error: { code: 'unavailable', message: 'the database does not answer; try again shortly' } }, retryAfter: UNAVAILABLE_RETRY_SECONDS };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error; see the server log' } } };
}

/**
 * A schema refusal as a person reads it: ajv's message, naming the field a body may not have (ajv only
 * says "must NOT have additional properties"), quoted and cut short.
 */
function describeValidation(fe: Partial<FastifyError>): string {
  const extra = fe.validation?.find((v) => v.keyword === 'additionalProperties');
  const name = (extra?.params as { additionalProperty?: unknown } | undefined)?.additionalProperty;
  if (extra && typeof name === 'string') {
    const where = `${fe.validationContext ?? 'body'}${extra.instancePath ? extra.instancePath.replaceAll('/', '.') : ''}`;
    return `${where} has a field it does not take: ${JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)}`;
  }
  return fe.message ?? 'validation failed';
}

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const { status, body, retryAfter } = toHttpError(err);
  if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Renders an error as an HTML page (the dashboard's), for a browser that asked for a page. */
export type ErrorPageRenderer = (reply: FastifyReply, status: number, message: string, request: FastifyRequest) => FastifyReply;

/** The page renderer of each server that has one (the API listener, once the dashboard is registered). */
const errorPages = new WeakMap<FastifyInstance, ErrorPageRenderer>();

/**
 * Makes the 404 and the router's refusals on `app` an HTML page for browsers (a request that accepts
 * `text/html`, outside `/api/`); API clients keep the JSON error.
 */
export function setErrorPage(app: FastifyInstance, renderer: ErrorPageRenderer): void {
  errorPages.set(app, renderer);
}

/** The page renderer when `request` is a browser's asking for a page on `app`. */
export function errorPageFor(app: FastifyInstance, request: FastifyRequest): ErrorPageRenderer | undefined {
  const page = errorPages.get(app);
  if (!page || request.url.startsWith('/api/')) return undefined;
  return /\btext\/html\b/.test(String(request.headers.accept ?? '')) ? page : undefined;
}

/** The longest piece of a request's path an error message quotes. */
const QUOTED_PATH_MAX = 120;

/** A request path as an error message quotes it: JSON-quoted, cut short. */
function quotedPath(path: string): string {
  return JSON.stringify(path.length > QUOTED_PATH_MAX ? `${path.slice(0, QUOTED_PATH_MAX)}…` : path);
}

/**
 * What the router refuses before any route runs (fastify's `frameworkErrors`): a path that is not valid
 * percent-encoding, or a path parameter longer than the router takes. Answered in the one error format,
 * quoting at most QUOTED_PATH_MAX characters of the path.
 */
export function sendFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply, page?: ErrorPageRenderer): FastifyReply {
  const path = request.url.split('?')[0] ?? '';
  const refused =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? { status: 414, message: `a part of the path ${quotedPath(path)} is too long` }
      : error.code === 'FST_ERR_BAD_URL'
        ? { status: 400, message: `the path ${quotedPath(path)} is not valid percent-encoding` }
        : undefined;
  if (!refused) return sendError(reply, error);
  if (page) return page(reply.code(refused.status), refused.status, refused.message, request);
  return reply.code(refused.status).type('application/json; charset=utf-8').send({ error: { code: 'invalid_input', message: refused.message } } satisfies ErrorBody);
}

/** Installs the one error mapping and a JSON 404 on a server. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const { status } = toHttpError(err);
    if (err instanceof PowerError) {
      const who = err.serviceTag === undefined ? 'a BMC' : `${err.serviceTag}'s BMC`;
      request.log.warn({ code: err.code, service_tag: err.serviceTag ?? null }, `power: ${who} failed: ${err.message}`);
    }
    else if (status === 503) request.log.warn({ err: (err as Error).message }, 'request answered 503: the database does not answer');
    else if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ code: (err as FastifyError).code, msg: (err as Error).message }, 'request rejected');
    return sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = quotedPath(request.url.split('?')[0] ?? '');
    const page = errorPageFor(app, request);
    if (page) return page(reply.code(404), 404, `There is no page at ${path}.`, request);
    return reply.code(404).send({ error: { code: 'not_found', message: `no route for ${request.method} ${path}` } } satisfies ErrorBody);
  });
}
