import type { FastifyInstance } from 'fastify';
import { createHttpServer } from '../api/http-server.ts';
import { registerEnrollRoute } from '../api/routes/enroll.ts';
import { registerHealthRoutes } from '../api/routes/health.ts';
import type { AppContext } from '../server/context.ts';

/** The `boot` role: what PXE clients talk to. No authentication. */
export async function buildBootServer(ctx: AppContext): Promise<FastifyInstance> {
  // Per-request logs at info would cost more than serving the script during a boot storm.
  const app = createHttpServer(ctx, { loggerInstance: ctx.logger.child({ role: 'boot' }, { level: 'warn' }) });
  registerHealthRoutes(app, ctx);
  registerEnrollRoute(app, ctx);
  return app;
}
