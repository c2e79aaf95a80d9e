import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { BulkService } from '../../core/bulk-service.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { MachinePowerService } from '../../power/machine-power.ts';

/** What the bulk route uses. */
export interface BulkRouteOptions {
  bulk: Pick<BulkService, 'run'>;
  power: Pick<MachinePowerService, 'actMany'>;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const BulkBody = Type.Object(
  {
    action: Type.Union([Type.Literal('set'), Type.Literal('build'), Type.Literal('delete'), Type.Literal('power')]),
    selector: Type.Optional(Type.String({ maxLength: 1024, description: 'a label selector with at least one requirement, e.g. role=web' })),
    ids: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 72 }), { minItems: 1, maxItems: 1000, description: 'machine ids or service tags' })),
    in_profile: Type.Optional(Type.String({ maxLength: 63, description: 'only machines with this profile (with or without a selector)' })),
    out_of_date: Type.Optional(Type.Boolean({ description: 'only machines that are out of date (true) or up to date (false)' })),
    profile: Type.Optional(Nullable(Type.String({ maxLength: 63 }))),
    labels: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'merged into each machine’s labels' })),
    hostname_pattern: Type.Optional(Type.String({ maxLength: 128 })),
    dry_run: Type.Optional(Type.Boolean({ description: 'say what would happen; change nothing' })),
    power: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'for action power: {action, boot_device?}' })),
  },
  { additionalProperties: false },
);
type BulkBody = Static<typeof BulkBody>;

const BulkAnswer = Type.Object({
  matched: Type.Optional(Type.Integer()),
  dry_run: Type.Optional(Type.Boolean()),
  results: Type.Array(
    Type.Object({
      id: Type.Union([Type.Integer(), Type.String()], { description: 'the machine id (power: the reference as given)' }),
      service_tag: Type.Optional(Type.String()),
      machine_id: Type.Optional(Nullable(Type.Integer())),
      ok: Type.Boolean(),
      error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
      changes: Type.Optional(Type.Array(Type.String())),
      hostname: Type.Optional(Nullable(Type.String())),
      build_id: Type.Optional(Type.Integer()),
      power_state: Type.Optional(Type.String()),
      checked_at: Type.Optional(Nullable(Type.String())),
      status: Type.Optional(Type.Integer()),
    }),
  ),
});

/**
 * `POST /api/v1/machines/bulk`: one action on many machines, picked by `selector` or `ids`: `set`
 * (profile, labels, hostname_pattern; all or nothing), `build` (machines already building are skipped
 * and say so), `delete`, or `power` (ids only). `dry_run` says what would happen.
 */
export function registerBulkRoutes(app: FastifyInstance, { bulk, power }: BulkRouteOptions): void {
  app.post<{ Body: BulkBody }>(
    '/api/v1/machines/bulk',
    {
      config: { access: 'operator' },
      bodyLimit: 256 * 1024,
      schema: {
        tags: ['fleet'],
        summary: 'One action on many machines: {action: set|build|delete, selector/in_profile/out_of_date | ids, …} or {action: power, ids, power}; per-machine results',
        body: BulkBody,
        response: { 200: BulkAnswer, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) => {
      const { action, power: powerBody, ...rest } = request.body;
      if (action === 'power') {
        const extra = Object.keys(rest).filter((k) => k !== 'ids');
        if (!rest.ids || !powerBody || extra.length > 0) {
          throw new InvalidInputError(`action power takes ids and power${extra.length ? `, not ${extra.join(', ')}` : ''}`, { field: extra[0] ?? 'ids' });
        }
        return { results: await power.actMany(rest.ids, powerBody, request.actor) };
      }
      if (powerBody !== undefined) throw new InvalidInputError(`power is only for action power`, { field: 'power' });
      if (action !== 'set') {
        const extra = (['profile', 'labels', 'hostname_pattern'] as const).filter((k) => rest[k] !== undefined);
        if (extra.length > 0) throw new InvalidInputError(`${extra.join(', ')} only go with action set`, { field: extra[0] });
      }
      return bulk.run({ ...rest, action }, request.actor);
    },
  );
}
