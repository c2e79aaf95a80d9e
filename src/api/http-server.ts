import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { AppContext } from '../server/context.ts';
import { installAccessControl } from './access.ts';
import { installErrorHandling } from './error-handler.ts';
import { SHARED_SCHEMAS } from './schemas.ts';

/**
 * A Fastify instance with what every listener of ours shares: the logger, strict JSON validation,
 * the error mapping, the shared schemas and per-route access control.
 */
export function createHttpServer(ctx: AppContext, options: FastifyServerOptions = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger,
    bodyLimit: 1024 * 1024,
    trustProxy: ctx.config.trustProxy.length > 0 ? ctx.config.trustProxy : false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    forceCloseConnections: 'idle',
    ...options,
  });
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  installErrorHandling(app);
  installAccessControl(app, ctx.authenticator);
  return app;
}
