import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.ts';
import type { Readiness } from './readiness.ts';

/** What the health routes need: a way to ask the database, and where to say it did not answer. */
export interface HealthOptions {
  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  logger: Logger;
  /** Parts of the process still starting, or a stop under way: `/readyz` says so before asking the database. */
  readiness?: Readiness;
}

/** `/healthz` (the process answers) and `/readyz` (every part of the process is up and the database answers). */
export function registerHealthRoutes(app: FastifyInstance, options: HealthOptions): void {
  app.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    const notReady = options.readiness?.reason;
    if (notReady !== undefined) return reply.code(503).send({ status: 'unavailable', reason: notReady });
    try {
      await options.ping();
      return { status: 'ready' };
    } catch (err) {
      options.logger.warn({ err }, 'readyz: database unreachable');
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
  });
}
