import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { InvalidInputError } from '../core/errors.ts';
import { isRowId } from '../core/validation.ts';
import { EventList, Limit, Offset, errorResponses } from '../http/schemas.ts';
import type { MachineService } from '../core/machine-service.ts';
import type { EventStore } from '../core/ports.ts';

/** What the audit-trail route uses. */
export interface EventRouteOptions {
  events: Pick<EventStore, 'list'>;
  machines: Pick<MachineService, 'get'>;
}

const EventQuery = Type.Object({
  actor: Type.Optional(Type.String({ maxLength: 200, description: '`user:alice`, `token:alice/ci`, `machine:ABC123`, `system`, or a kind alone (`token`)' })),
  machine: Type.Optional(Type.String({ maxLength: 64, description: 'machine id (also of a deleted machine) or service tag' })),
  kind: Type.Optional(Type.String({ maxLength: 64, examples: ['token.created'] })),
  since: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601; events at or after' })),
  until: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601; events before' })),
  limit: Type.Optional(Limit()),
  offset: Type.Optional(Offset()),
});

function isoTime(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidInputError(`${name} must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z`);
  return new Date(t).toISOString();
}

/** `GET /api/v1/events` (admin): the audit trail, newest first, filtered by actor, machine, kind and time. */
export function registerEventRoutes(app: FastifyInstance, { events, machines }: EventRouteOptions): void {
  app.get<{ Querystring: Static<typeof EventQuery> }>(
    '/api/v1/events',
    { config: { access: 'admin' }, schema: { tags: ['events'], summary: 'The audit trail', querystring: EventQuery, response: { 200: EventList, ...errorResponses(400, 401, 403, 404) } } },
    async (request) => {
      const q = request.query;
      const since = isoTime('since', q.since);
      const until = isoTime('until', q.until);
      // A numeric id is used as is, so the events of a deleted machine stay reachable; a tag must exist.
      const machineId = q.machine === undefined ? undefined : isRowId(q.machine) ? Number(q.machine) : (await machines.get(q.machine)).id;
      return events.list({
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(machineId !== undefined ? { machineId } : {}),
        ...(q.kind !== undefined ? { kind: q.kind } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        limit: q.limit ?? 50,
        offset: q.offset ?? 0,
      });
    },
  );
}
