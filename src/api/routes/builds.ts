import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../server/context.ts';
import { Build, BuildIdParam, errorResponses } from '../../http/schemas.ts';

type Id = { Params: { id: number } };

/** `/api/v1/builds/{id}` and its cancel. The log stream lives with the builder (src/builder/log-routes.ts). */
export function registerBuildRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get<Id>(
    '/api/v1/builds/:id',
    {
      config: { access: 'viewer' },
      schema: { tags: ['builds'], summary: 'One build, with its log so far', params: BuildIdParam, response: { 200: Type.Ref(Build), ...errorResponses(401, 404) } },
    },
    async (request) => ctx.builds.get(request.params.id),
  );

  app.post<Id>(
    '/api/v1/builds/:id/cancel',
    {
      config: { access: 'operator' },
      schema: { tags: ['builds'], summary: 'Stop a pending or running build', params: BuildIdParam, response: { 200: Type.Ref(Build), ...errorResponses(401, 403, 404, 409) } },
    },
    async (request) => ctx.builds.cancel(request.params.id, request.actor),
  );
}
