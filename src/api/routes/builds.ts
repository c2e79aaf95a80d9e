import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { BuildLifecycle } from '../../core/build-lifecycle.ts';
import type { BuilderStatus } from '../../core/builder-presence.ts';
import { Build, BuildIdParam, errorResponses } from '../../http/schemas.ts';

/** A builder as `GET /api/v1/builders` lists it. */
const BuilderItem = Type.Object({
  name: Type.String({ description: 'host and process id, e.g. build-01-4242' }),
  live: Type.Boolean({ description: 'heard from within the last 30 s (its heartbeat is every 10 s)' }),
  started_at: Type.String({ format: 'date-time' }),
  last_seen_at: Type.String({ format: 'date-time' }),
  concurrency: Type.Integer({ description: 'METAL_BUILD_CONCURRENCY: builds it runs at once' }),
  running: Type.Integer({ description: 'builds it was running when last heard from' }),
  boot_check: Type.String({ description: 'METAL_BUILD_BOOT_CHECK: off, booted or healthy' }),
  secure_boot: Type.Union([Type.String(), Type.Null()], { description: 'subject of the certificate it signs kernels for' }),
});

type Id = { Params: { id: number } };

/** What the build routes use. */
export interface BuildRouteOptions {
  builds: Pick<BuildLifecycle, 'get' | 'cancel'>;
  /** Every builder with a presence row, live or silent. */
  builders: () => Promise<BuilderStatus[]>;
}

/** `/api/v1/builds/{id}` and its cancel, and `/api/v1/builders`. The log stream is in build-log-routes.ts. */
export function registerBuildRoutes(app: FastifyInstance, { builds, builders }: BuildRouteOptions): void {
  app.get(
    '/api/v1/builders',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['builds'],
        summary: 'The builders: each running builder says so every 10 s; one silent for 30 s is not live, and is forgotten after a day',
        response: { 200: Type.Object({ items: Type.Array(BuilderItem) }), ...errorResponses(401) },
      },
    },
    async () => ({
      items: (await builders()).map((b) => ({
        name: b.name,
        live: b.live,
        started_at: b.startedAt,
        last_seen_at: b.lastSeenAt,
        concurrency: b.concurrency,
        running: b.running,
        boot_check: b.bootCheck,
        secure_boot: b.secureBoot,
      })),
    }),
  );

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
