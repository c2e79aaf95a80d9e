import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { MachineImageService } from '../../core/machine-images.ts';
import { IdParam, MAX_ID, errorResponses } from '../../http/schemas.ts';

export const RollbackBody = Type.Object(
  { build_id: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'the build to boot; default: the successful build before the current one' })) },
  { additionalProperties: false },
);
export type RollbackBody = Static<typeof RollbackBody>;

export const RollbackResult = Type.Object({
  machine_id: Type.Integer(),
  service_tag: Type.String(),
  build_id: Type.Integer({ description: 'the build the machine boots now' }),
  previous_build_id: Type.Union([Type.Integer(), Type.Null()], { description: 'the build it booted before' }),
});

/** What the rollback route uses. */
export interface RollbackRouteOptions {
  machineImages: Pick<MachineImageService, 'rollback'>;
}

/** `POST /api/v1/machines/{id}/rollback`: point a machine back at an earlier build whose image is still published. */
export function registerRollbackRoute(app: FastifyInstance, { machineImages }: RollbackRouteOptions): void {
  app.post<{ Params: { id: string }; Body: RollbackBody | undefined }>(
    '/api/v1/machines/:id/rollback',
    {
      config: { access: 'operator' },
      bodyLimit: 1024,
      schema: {
        tags: ['machines'],
        summary: 'Boot an earlier build again (default: the one before the current); 409 when there is none or its image was deleted',
        params: IdParam,
        body: Type.Union([RollbackBody, Type.Null()]),
        response: { 200: RollbackResult, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { machine, build_id, previous_build_id } = await machineImages.rollback(request.params.id, request.body?.build_id, request.actor);
      return { machine_id: machine.id, service_tag: machine.service_tag, build_id, previous_build_id };
    },
  );
}
