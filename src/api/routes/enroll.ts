import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import type { MachineService } from '../../core/machine-service.ts';
import { EnrollBody, EnrollResponse, errorResponses } from '../../http/schemas.ts';

/** What the enrollment route uses. */
export interface EnrollRouteOptions {
  machines: Pick<MachineService, 'enroll'>;
  /** Runs before enrollment (rate limit, enrollment token). */
  guard?: preHandlerAsyncHookHandler;
}

/** `POST /api/v1/enroll`: served by the API and by the boot listener (same handler). */
export function registerEnrollRoute(app: FastifyInstance, options: EnrollRouteOptions): void {
  app.post<{ Body: EnrollBody }>(
    '/api/v1/enroll',
    {
      config: { access: 'public' },
      bodyLimit: 1024 * 1024,
      schema: {
        tags: ['enrollment'],
        summary: 'A machine registers itself (the registration agent calls this)',
        body: EnrollBody,
        response: { 200: EnrollResponse, 201: EnrollResponse, ...errorResponses(400, 401, 409, 413, 415, 429) },
      },
      preHandler: options.guard ? [options.guard] : [],
    },
    async (request, reply) => {
      const { machine, created } = await options.machines.enroll(
        request.body,
        { kind: 'machine', name: typeof request.body.service_tag === 'string' ? request.body.service_tag : 'unknown' },
        request.ip,
      );
      return reply.code(created ? 201 : 200).send({ id: machine.id, service_tag: machine.service_tag, status: machine.status });
    },
  );
}
