import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { IdParam, errorResponses } from '../../http/schemas.ts';
import type { MachinePowerService } from '../../power/machine-power.ts';

/** What the power routes use. */
export interface PowerRouteOptions {
  power: Pick<
    MachinePowerService,
    'getBmc' | 'setBmc' | 'clearBmc' | 'getState' | 'act' | 'listCredentialSets' | 'createCredentialSet' | 'updateCredentialSet' | 'deleteCredentialSet'
  >;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const PowerStateEnum = Type.Union([Type.Literal('on'), Type.Literal('off'), Type.Literal('unknown')]);

/** Checked by the power service, which names the field that is wrong (and never echoes a password). */
const AnyObject = Type.Object({}, { additionalProperties: true });

const PowerStateBody = Type.Object({ power_state: PowerStateEnum, checked_at: Nullable(Type.String({ format: 'date-time' })) });

const BmcView = Type.Object({
  type: Type.Union([Type.Literal('ipmi'), Type.Literal('redfish')]),
  address: Type.String({ examples: ['10.0.0.21:623'] }),
  username: Type.String(),
  credential_set: Nullable(Type.String()),
  verify_tls: Type.Boolean(),
  tls_fingerprint: Nullable(Type.String()),
  tls_ca_bundle: Nullable(Type.String()),
  auth: Type.Union([Type.Literal('session'), Type.Literal('basic')]),
  system_id: Nullable(Type.String()),
  reboot_on_publish: Type.Boolean(),
  power_state: PowerStateEnum,
  checked_at: Nullable(Type.String()),
});

const CredentialSetView = Type.Object({
  name: Type.String(),
  username: Type.String(),
  machines: Type.Integer({ description: 'machines whose BMC uses the set' }),
  created_at: Type.String(),
  updated_at: Type.String(),
});

const NameParam = Type.Object({ name: Type.String({ maxLength: 64 }) });

type Id = { Params: { id: string } };
type Name = { Params: { name: string } };

/**
 * Power control: `/api/v1/machines/{id}/bmc`, `/api/v1/machines/{id}/power` (bulk `action: "power"` is in bulk.ts), and
 * BMC credential sets. Viewers read state; operators set BMCs and act; admins manage credential sets.
 */
export function registerPowerRoutes(app: FastifyInstance, { power }: PowerRouteOptions): void {
  app.get<Id>(
    '/api/v1/machines/:id/bmc',
    {
      config: { access: 'viewer' },
      schema: { tags: ['power'], summary: 'A machine’s BMC (never the password)', params: IdParam, response: { 200: BmcView, ...errorResponses(401, 404) } },
    },
    async (request) => power.getBmc(request.params.id),
  );

  app.put<Id & { Body: Record<string, unknown> }>(
    '/api/v1/machines/:id/bmc',
    {
      config: { access: 'operator' },
      bodyLimit: 128 * 1024,
      schema: {
        tags: ['power'],
        summary: 'Set a machine’s BMC: type, address, username and password (write-only) or credential_set, Redfish TLS, reboot_on_publish',
        params: IdParam,
        body: AnyObject,
        response: { 200: BmcView, ...errorResponses(400, 401, 403, 404, 413) },
      },
    },
    async (request) => power.setBmc(request.params.id, request.body, request.actor),
  );

  app.delete<Id>(
    '/api/v1/machines/:id/bmc',
    {
      config: { access: 'operator' },
      schema: { tags: ['power'], summary: 'Forget a machine’s BMC', params: IdParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404) } },
    },
    async (request, reply) => {
      await power.clearBmc(request.params.id, request.actor);
      return reply.code(204).send();
    },
  );

  app.get<Id>(
    '/api/v1/machines/:id/power',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['power'],
        summary: 'The power state the BMC last reported (kept fresh by the poller)',
        params: IdParam,
        response: { 200: PowerStateBody, ...errorResponses(401, 404) },
      },
    },
    async (request) => power.getState(request.params.id),
  );

  app.post<Id & { Body: Record<string, unknown> }>(
    '/api/v1/machines/:id/power',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['power'],
        summary: 'Power action {action: on|off|cycle|reset|status, boot_device?: pxe}; answers with the state after it',
        params: IdParam,
        body: AnyObject,
        response: { 200: PowerStateBody, ...errorResponses(400, 401, 403, 404, 409, 502, 504) },
      },
    },
    async (request) => power.act(request.params.id, request.body, request.actor),
  );

  app.get(
    '/api/v1/bmc-credential-sets',
    {
      config: { access: 'admin' },
      schema: { tags: ['power'], summary: 'BMC credential sets (never their passwords)', response: { 200: Type.Object({ items: Type.Array(CredentialSetView) }), ...errorResponses(401, 403) } },
    },
    async () => ({ items: await power.listCredentialSets() }),
  );

  app.post<{ Body: Record<string, unknown> }>(
    '/api/v1/bmc-credential-sets',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['power'],
        summary: 'Create a credential set {name, username, password}',
        body: AnyObject,
        response: { 201: CredentialSetView, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(await power.createCredentialSet(request.body, request.actor)),
  );

  app.put<Name & { Body: Record<string, unknown> }>(
    '/api/v1/bmc-credential-sets/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['power'],
        summary: 'Change a credential set’s username or password',
        params: NameParam,
        body: AnyObject,
        response: { 200: CredentialSetView, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => power.updateCredentialSet(request.params.name, request.body, request.actor),
  );

  app.delete<Name>(
    '/api/v1/bmc-credential-sets/:name',
    {
      config: { access: 'admin' },
      schema: { tags: ['power'], summary: 'Delete a credential set no machine uses', params: NameParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 409) } },
    },
    async (request, reply) => {
      await power.deleteCredentialSet(request.params.name, request.actor);
      return reply.code(204).send();
    },
  );
}
