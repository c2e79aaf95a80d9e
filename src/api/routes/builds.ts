import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { BuildLifecycle } from '../../core/build-lifecycle.ts';
import { Build, BuildIdParam, errorResponses } from '../../http/schemas.ts';

type Id = { Params: { id: number } };

/** What the build routes use. */
export interface BuildRouteOptions {
  builds: Pick<BuildLifecycle, 'get' | 'cancel'>;
}

/** `/api/v1/builds/{id}` and its cancel. The log stream is in build-log-routes.ts. */
export function registerBuildRoutes(app: FastifyInstance, { builds }: BuildRouteOptions): void {
  app.get<Id>(
    '/api/v1/builds/:id',
    {
      config: { access: 'viewer' },
      schema: { tags: ['builds'], summary: 'One build, with its log so far', params: BuildIdParam, response: { 200: Type.Ref(Build), ...errorResponses(401, 404) } },
    },
    async (request) => builds.get(request.params.id),
  );

  app.post<Id>(
    '/api/v1/builds/:id/cancel',
    {
      config: { access: 'operator' },
      schema: { tags: ['builds'], summary: 'Stop a pending or running build', params: BuildIdParam, response: { 200: Type.Ref(Build), ...errorResponses(401, 403, 404, 409) } },
    },
    async (request) => builds.cancel(request.params.id, request.actor),
  );
}
