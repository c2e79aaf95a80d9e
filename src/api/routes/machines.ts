import { parseSelector } from '../../core/labels.ts';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { BuildLifecycle } from '../../core/build-lifecycle.ts';
import type { MachineService } from '../../core/machine-service.ts';
import type { ProfileService } from '../../core/profile-service.ts';
import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import type { EventStore } from '../../core/ports.ts';
import {
  Build,
  BuildList,
  EventList,
  IdParam,
  IdentityDecisionBody,
  Machine,
  MachineList,
  MachineListQuery,
  MachineUpdateBody,
  Paging,
  errorResponses,
} from '../../http/schemas.ts';

type Id = { Params: { id: string } };

/** What the machine routes use. */
export interface MachineRouteOptions {
  machines: MachineService;
  builds: Pick<BuildLifecycle, 'listForMachine'>;
  events: Pick<EventStore, 'list'>;
  /** To refuse a `profile` filter naming no profile. */
  profiles?: Pick<ProfileService, 'get'>;
}

/** `/api/v1/machines…`: list, read, edit, delete, build, and each machine's builds and events. */
export function registerMachineRoutes(app: FastifyInstance, { machines, builds, events, profiles }: MachineRouteOptions): void {
  app.get<{ Querystring: MachineListQuery }>(
    '/api/v1/machines',
    {
      config: { access: 'viewer' },
      schema: { tags: ['machines'], summary: 'List machines', querystring: MachineListQuery, response: { 200: MachineList, ...errorResponses(400, 401) } },
    },
    async (request) => {
      const q = request.query;
      if (q.profile !== undefined && profiles) {
        await profiles.get(q.profile).catch((err: unknown) => {
          throw err instanceof NotFoundError ? new InvalidInputError(`profile ${q.profile} does not exist`, { field: 'profile' }) : err;
        });
      }
      return machines.list({
        ...(q.status ? { status: q.status } : {}),
        ...(q.search ? { search: q.search } : {}),
        ...(q.selector ? { selector: parseSelector(q.selector) } : {}),
        ...(q.profile !== undefined ? { profile: q.profile } : {}),
        ...(q.out_of_date !== undefined ? { outOfDate: q.out_of_date } : {}),
        limit: q.limit ?? 50,
        offset: q.offset ?? 0,
        ...(q.sort ? { sort: q.sort } : {}),
        ...(q.order ? { order: q.order } : {}),
      });
    },
  );

  app.get<Id>(
    '/api/v1/machines/:id',
    {
      config: { access: 'viewer' },
      schema: { tags: ['machines'], summary: 'One machine, by service tag, tag:X or id:N', params: IdParam, response: { 200: Type.Ref(Machine), ...errorResponses(401, 404, 409) } },
    },
    async (request) => machines.get(request.params.id),
  );

  app.put<Id & { Body: MachineUpdateBody }>(
    '/api/v1/machines/:id',
    {
      config: { access: 'operator' },
      // 256 KiB of configuration files may double in size as JSON strings.
      bodyLimit: 1024 * 1024,
      schema: {
        tags: ['machines'],
        summary: 'Change hostname, description, labels, profile or NixOS configuration (partial)',
        params: IdParam,
        body: MachineUpdateBody,
        response: { 200: Type.Ref(Machine), ...errorResponses(400, 401, 403, 404, 409, 413) },
      },
    },
    async (request) => machines.update(request.params.id, request.body, request.actor),
  );

  app.delete<Id>(
    '/api/v1/machines/:id',
    {
      config: { access: 'operator' },
      schema: { tags: ['machines'], summary: 'Remove a machine and its images', params: IdParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 409) } },
    },
    async (request, reply) => {
      await machines.remove(request.params.id, request.actor);
      return reply.code(204).send();
    },
  );

  app.post<Id>(
    '/api/v1/machines/:id/build',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['builds'],
        summary: 'Build the machine’s image from its current configuration',
        params: IdParam,
        response: { 202: Type.Ref(Build), ...errorResponses(401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => reply.code(202).send(await machines.requestBuild(request.params.id, request.actor)),
  );

  app.post<Id & { Body: IdentityDecisionBody }>(
    '/api/v1/machines/:id/identity',
    {
      config: { access: 'operator' },
      bodyLimit: 1024,
      schema: {
        tags: ['machines'],
        summary: 'Accept or reject the machine’s identity conflict (409 when it has none)',
        params: IdParam,
        body: IdentityDecisionBody,
        response: { 200: Type.Ref(Machine), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => machines.resolveIdentityConflict(request.params.id, request.body.action, request.actor),
  );

  app.get<Id & { Querystring: { limit?: number; offset?: number } }>(
    '/api/v1/machines/:id/builds',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['builds'],
        summary: 'A machine’s builds, newest first (without logs)',
        params: IdParam,
        querystring: Paging,
        response: { 200: BuildList, ...errorResponses(401, 404, 409) },
      },
    },
    async (request) => {
      const machine = await machines.get(request.params.id);
      return builds.listForMachine(machine.id, request.query.limit ?? 50, request.query.offset ?? 0);
    },
  );

  app.get<Id & { Querystring: { limit?: number; offset?: number } }>(
    '/api/v1/machines/:id/events',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['machines'],
        summary: 'A machine’s events, newest first',
        params: IdParam,
        querystring: Paging,
        response: { 200: EventList, ...errorResponses(401, 404, 409) },
      },
    },
    async (request) => {
      const machine = await machines.get(request.params.id);
      return events.list({ machineId: machine.id, limit: request.query.limit ?? 50, offset: request.query.offset ?? 0 });
    },
  );
}
