import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ROLLOUT_MACHINE_STATES, ROLLOUT_STATES } from '../../core/rollout-machine.ts';
import type { RolloutService } from '../../core/rollout-service.ts';
import { BootHealthSchema, Paging, errorResponses } from '../../http/schemas.ts';

const Nullable = <T extends ReturnType<typeof Type.Integer> | ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = () => Type.String({ format: 'date-time', description: 'ISO 8601 UTC' });
const Count = (min: number, max: number, description: string) => Type.Integer({ minimum: min, maximum: max, description });

export const RolloutBody = Type.Object(
  {
    selector: Type.String({ minLength: 1, maxLength: 1024, description: 'the machines, as a label selector', examples: ['role=web'] }),
    build: Type.Optional(Type.Union([Type.Literal('missing'), Type.Literal('always')], { description: 'missing (default): build only machines whose image is not of their current configuration; always: every one' })),
    canary: Type.Optional(Count(0, 10_000, 'machines in the first wave (default 1)')),
    batch_size: Type.Optional(Count(1, 10_000, 'machines in each later wave (default 5)')),
    max_unavailable: Type.Optional(Count(0, 10_000, 'most machines of a wave rebooting at once; 0 (default): batch_size')),
    max_failures: Type.Optional(Count(0, 10_000, 'failed builds and unhealthy machines tolerated (default 0); one more stops the rollout and rolls its wave back')),
    health_timeout_seconds: Type.Optional(Count(1, 86_400, 'how long a machine has to report its new build (default 600)')),
    reboot: Type.Optional(Type.Union([Type.Literal('power'), Type.Literal('agent'), Type.Literal('none')], { description: 'power: through the BMC; agent (default): the image’s own service reboots; none: wait for a reboot' })),
  },
  { additionalProperties: false },
);
export type RolloutBody = Static<typeof RolloutBody>;

export const RolloutMachine = Type.Object({
  machine_id: Type.Integer(),
  service_tag: Type.String(),
  wave: Type.Integer({ description: '1 is the canary wave when there is one; 0: the machine needed nothing' }),
  from_build_id: Nullable(Type.Integer()),
  to_build_id: Nullable(Type.Integer()),
  state: Type.Union(ROLLOUT_MACHINE_STATES.map((s) => Type.Literal(s))),
  message: Nullable(Type.String()),
  started_at: Nullable(Time()),
  deadline_at: Nullable(Time()),
  finished_at: Nullable(Time()),
  updated_at: Time(),
  health: Type.Optional(BootHealthSchema),
});

export const Rollout = Type.Object(
  {
    id: Type.Integer(),
    selector: Type.String(),
    build: Type.String(),
    canary: Type.Integer(),
    batch_size: Type.Integer(),
    max_unavailable: Type.Integer(),
    max_failures: Type.Integer(),
    health_timeout_seconds: Type.Integer(),
    reboot: Type.String(),
    state: Type.Union(ROLLOUT_STATES.map((s) => Type.Literal(s))),
    wave: Type.Integer({ description: 'the wave in progress (0 before the first)' }),
    waves: Type.Integer(),
    version: Type.Integer(),
    resume_state: Nullable(Type.String()),
    message: Nullable(Type.String()),
    created_by: Type.String(),
    created_at: Time(),
    updated_at: Time(),
    finished_at: Nullable(Time()),
    machines: Type.Array(RolloutMachine),
  },
  { $id: 'Rollout' },
);

/**
 * A rollout id in a path: digits only, parsed here (an integer schema would let ajv's coercion pass
 * "Infinity" through as a number).
 */
export const RolloutIdParam = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,9}$', description: 'a rollout id' }) });
const rolloutId = (id: string): number => {
  const n = Number(id);
  return n <= 2_147_483_647 ? n : 0;
};

/** What the rollout routes use. */
export interface RolloutRouteOptions {
  rollouts: Pick<RolloutService, 'start' | 'list' | 'get' | 'pause' | 'resume' | 'cancel'>;
}

/** `/api/v1/rollouts…`: start a rollout, list and read them, pause, resume and cancel one. */
export function registerRolloutRoutes(app: FastifyInstance, { rollouts }: RolloutRouteOptions): void {
  app.addSchema(Rollout);
  app.post<{ Body: RolloutBody }>(
    '/api/v1/rollouts',
    {
      config: { access: 'operator' },
      bodyLimit: 8 * 1024,
      schema: {
        tags: ['rollouts'],
        summary: 'Build what the selected machines need, then move them to it in waves gated by their booted reports',
        body: RolloutBody,
        response: { 201: Type.Ref(Rollout), ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request, reply) => reply.code(201).send(await rollouts.start(request.body, request.actor)),
  );

  app.get<{ Querystring: { limit?: number; offset?: number } }>(
    '/api/v1/rollouts',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['rollouts'],
        summary: 'Rollouts, newest first, with their machines',
        querystring: Paging,
        response: { 200: Type.Object({ items: Type.Array(Type.Ref(Rollout)), total: Type.Integer() }), ...errorResponses(400, 401) },
      },
    },
    async (request) => rollouts.list(request.query.limit ?? 50, request.query.offset ?? 0),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/rollouts/:id',
    {
      config: { access: 'viewer' },
      schema: { tags: ['rollouts'], summary: 'One rollout: per machine its wave, from and to build, state and times', params: RolloutIdParam, response: { 200: Type.Ref(Rollout), ...errorResponses(400, 401, 404) } },
    },
    async (request) => rollouts.get(rolloutId(request.params.id)),
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<{ Params: { id: string } }>(
      `/api/v1/rollouts/:id/${action}`,
      {
        config: { access: 'operator' },
        bodyLimit: 1024,
        schema: {
          tags: ['rollouts'],
          summary:
            action === 'pause'
              ? 'Start no new wave (the wave in flight is still watched and rolled back if it fails)'
              : action === 'resume'
                ? 'Go on with a paused rollout'
                : 'Stop the rollout: running builds are cancelled, machines already moved stay where they are',
          params: RolloutIdParam,
          response: { 200: Type.Ref(Rollout), ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request) => rollouts[action](rolloutId(request.params.id), request.actor),
    );
  }
}
