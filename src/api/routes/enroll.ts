import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import type { MachineService } from '../../core/machine-service.ts';
import type { EnrollmentResult } from '../../metrics/metal-metrics.ts';
import { EnrollBody, EnrollResponse, errorResponses } from '../../http/schemas.ts';

/** What the enrollment route uses. */
export interface EnrollRouteOptions {
  machines: Pick<MachineService, 'enroll'>;
  /** Runs before enrollment (rate limit, enrollment token). */
  guard?: preHandlerAsyncHookHandler;
  /** Counts enrollments by result. */
  metrics?: { enrollment(result: EnrollmentResult): void };
}

/** How an enrollment request ended, from its status: 201 new, 200 known, 409 conflict, 429 rate limited. */
export function enrollmentResult(status: number): EnrollmentResult {
  if (status === 201) return 'new';
  if (status < 300) return 'known';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  return status < 500 ? 'rejected' : 'error';
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
        response: { 200: EnrollResponse, 201: EnrollResponse, ...errorResponses(400, 401, 413, 415, 429) },
      },
      preHandler: options.guard ? [options.guard] : [],
      ...(options.metrics ? { onResponse: async (_request, reply) => options.metrics!.enrollment(enrollmentResult(reply.statusCode)) } : {}),
    },
    async (request, reply) => {
      const { machine, created } = await options.machines.enroll(request.body, {
        kind: 'machine',
        name: typeof request.body.service_tag === 'string' ? request.body.service_tag : 'unknown',
      });
      return reply.code(created ? 201 : 200).send({ id: machine.id, service_tag: machine.service_tag, status: machine.status });
    },
  );
}
