import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../server/context.ts';
import { registerAuth } from '../auth/register-auth.ts';
import { registerDashboard } from '../dashboard/dashboard.tsx';
import { createHttpServer } from '../http/http-server.ts';
import { registerBuildRoutes } from './routes/builds.ts';
import { registerBuildLogRoutes } from '../builder/log-routes.ts';
import { registerEnrollRoute } from './routes/enroll.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerMachineRoutes } from './routes/machines.ts';
import { registerMetricsRoute } from './routes/metrics.ts';

/** A hook for other parts (auth, builder, dashboard) to add their routes to the API listener. */
export type RouteModule = (app: FastifyInstance, ctx: AppContext) => void | Promise<void>;

/** The `api` role: REST API v1, its OpenAPI document, health checks, and whatever modules add. */
export async function buildApiServer(ctx: AppContext, modules: RouteModule[] = []): Promise<FastifyInstance> {
  const app = createHttpServer(ctx);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Metal Enrollment API',
        version: '1',
        description: 'Bare-metal enrollment, configuration and NixOS image builds. Authenticate with `Authorization: Bearer <token>`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  registerAuth(app, ctx);
  registerHealthRoutes(app, ctx);
  registerMetricsRoute(app, ctx);
  registerEnrollRoute(app, ctx);
  registerMachineRoutes(app, ctx);
  registerBuildRoutes(app, ctx);
  registerBuildLogRoutes(app, ctx);
  await registerDashboard(app, ctx);
  for (const module of modules) await module(app, ctx);
  app.get('/api/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
  return app;
}
