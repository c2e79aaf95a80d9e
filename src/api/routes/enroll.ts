import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { assertHardwareBounds } from '../../core/json-bounds.ts';
import type { MachineService } from '../../core/machine-service.ts';
import type { EnrollmentResult } from '../../metrics/metal-metrics.ts';
import { EnrollBody, EnrollResponse, errorResponses } from '../../http/schemas.ts';

/** What the enrollment route uses. */
export interface EnrollRouteOptions {
  machines: Pick<MachineService, 'enroll'>;
  /** Runs when the headers are in, before the body is read (rate limit, enrollment token). */
  guard?: onRequestAsyncHookHandler;
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
        response: { 200: EnrollResponse, 201: EnrollResponse, ...errorResponses(400, 401, 409, 413, 415, 429) },
      },
      // The guard runs on the headers alone: a limited or unauthorized client's body is never parsed.
      onRequest: options.guard ? [options.guard] : [],
      // Bounded before schema validation: depth, array items, string length, total size.
      preValidation: async (request) => assertHardwareBounds((request.body as { hardware?: unknown } | null)?.hardware),
      ...(options.metrics ? { onResponse: async (_request, reply) => options.metrics!.enrollment(enrollmentResult(reply.statusCode)) } : {}),
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
