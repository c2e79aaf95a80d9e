import type { FastifyInstance } from 'fastify';
import { ping } from '../../storage/database.ts';
import type { AppContext } from '../../server/context.ts';

/** `/healthz` (the process answers) and `/readyz` (the database answers too). */
export function registerHealthRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    try {
      await ping(ctx.storage.database);
      return { status: 'ready' };
    } catch (err) {
      ctx.logger.warn({ err }, 'readyz: database unreachable');
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
  });
}
