import AjvCompiler from '@fastify/ajv-compiler';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { assertBodyDepth } from '../core/json-bounds.ts';
import { InvalidInputError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { installAccessControl, type Authenticator } from './access.ts';
import { errorPageFor, installErrorHandling, sendFrameworkError } from './error-handler.ts';
import { SHARED_SCHEMAS } from './schemas.ts';

/** What every listener is built with. */
export interface HttpPlatform {
  logger: Logger;
  /** Proxies whose `X-Forwarded-For` is believed (METAL_TRUST_PROXY). */
  trustProxy: readonly string[];
  /** Finds who is calling; every route declares who may. */
  authenticator: Authenticator;
  /**
   * How long a client may take to send one whole request, headers and body (METAL_REQUEST_TIMEOUT_SECONDS;
   * default 30 s). A client still sending after it is cut with a 408. Responses (log follows, event
   * streams) are not bounded by it.
   */
  requestTimeoutMs?: number;
}

/** The default of METAL_REQUEST_TIMEOUT_SECONDS, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * A Fastify instance with what every listener of ours shares: the logger, strict JSON validation,
 * the error mapping, the shared schemas and per-route access control.
 */
export function createHttpServer(platform: HttpPlatform, options: FastifyServerOptions = {}): FastifyInstance {
  const requestTimeout = platform.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const app: FastifyInstance = Fastify({
    loggerInstance: platform.logger,
    bodyLimit: 1024 * 1024,
    trustProxy: platform.trustProxy.length > 0 ? [...platform.trustProxy] : false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    schemaController: { compilersFactory: { buildValidator: strictBodyValidator() } },
    forceCloseConnections: 'idle',
    // A path the router cannot decode, or whose parameter is too long, is answered like any error.
    frameworkErrors: (error, request, reply) => sendFrameworkError(error, request, reply, errorPageFor(app, request)),
    // A stalled upload (headers, part of a body, then silence) holds a socket and its buffered bytes:
    // the whole request must arrive within requestTimeout, checked often enough to cut it on time.
    requestTimeout,
    http: {
      requestTimeout,
      headersTimeout: Math.min(requestTimeout, 60_000),
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
    ...options,
  });
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  // Only JSON (and what a module registers in its own scope) is accepted as a body: others get 415.
  app.removeContentTypeParser('text/plain');
  installErrorHandling(app);
  // Before any validator or handler walks a body: a document nested thousands of levels deep is a 400.
  app.addHook('preValidation', async (request) => assertBodyDepth(request.body));
  installAccessControl(app, platform.authenticator);
  // Coercion turns "Infinity" and "1e400" in a path or query into a number that passes an integer
  // schema's bounds (ajv checks them on the text); no route takes a number that is not finite.
  app.addHook('preHandler', async (request) => {
    for (const part of [request.params, request.query]) {
      if (typeof part !== 'object' || part === null) continue;
      for (const [key, value] of Object.entries(part)) {
        if (typeof value === 'number' && !Number.isFinite(value)) throw new InvalidInputError(`${key} must be a finite number`, { field: key });
      }
    }
  });
  return app;
}

/**
 * Query strings and path parameters are text and are coerced to the declared types; JSON bodies are
 * not: `{"service_tag": 12}` is a wrong type, not the tag "12".
 */
function strictBodyValidator() {
  const coercing = AjvCompiler();
  const strict = AjvCompiler();
  type Build = ReturnType<typeof AjvCompiler>;
  return (external: Parameters<Build>[0], options: Parameters<Build>[1]) => {
    const forParts = coercing(external, options);
    const customOptions = { ...(options?.customOptions as Record<string, unknown> | undefined), coerceTypes: false };
    const forBody = strict(external, { ...options, customOptions } as Parameters<Build>[1]);
    return (route: Parameters<ReturnType<Build>>[0]) => (route.httpPart === 'body' ? forBody(route) : forParts(route));
  };
}
