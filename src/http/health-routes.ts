import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.ts';

/** What the health routes need: a way to ask the database, and where to say it did not answer. */
export interface HealthOptions {
  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  logger: Logger;
}

/** `/healthz` (the process answers) and `/readyz` (the database answers too). */
export function registerHealthRoutes(app: FastifyInstance, options: HealthOptions): void {
  app.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    try {
      await options.ping();
      return { status: 'ready' };
    } catch (err) {
      options.logger.warn({ err }, 'readyz: database unreachable');
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
  });
}
