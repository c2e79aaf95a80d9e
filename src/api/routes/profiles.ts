import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { ProfileService } from '../../core/profile-service.ts';
import { errorResponses } from '../../http/schemas.ts';

/** What the profile routes use. */
export interface ProfileRouteOptions {
  profiles: Pick<ProfileService, 'list' | 'get' | 'create' | 'update' | 'remove'>;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const ProfileView = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String({ examples: ['web'] }),
    description: Nullable(Type.String()),
    nixos_config: Type.String({ description: 'a NixOS module, imported before each machine’s own' }),
    hostname_pattern: Nullable(Type.String({ examples: ['web-{n:03}'] })),
    kernel_params: Type.Array(Type.String(), { examples: [['console=ttyS1,115200']] }),
    auto_build: Type.Boolean({ description: 'machines that get the profile through a rule are built at once' }),
    health_check: Nullable(
      Type.String({ description: 'a command line the image runs once it came up (sh -c, at most 120 s); a rollout counts a failure as unhealthy', examples: ['systemctl is-active nginx'] }),
    ),
    skip_boot_check: Type.Boolean({ description: 'its machines’ builds skip the boot check (METAL_BUILD_BOOT_CHECK): for configurations that cannot come up in the builder’s VM' }),
    machines: Type.Integer({ description: 'machines using it' }),
    out_of_date: Type.Integer({ description: 'of those, how many are out of date' }),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
);

const Fields = {
  description: Type.Optional(Nullable(Type.String({ maxLength: 4096 }))),
  nixos_config: Type.Optional(Type.String({ description: 'a NixOS module, at most 256 KiB' })),
  hostname_pattern: Type.Optional(Nullable(Type.String({ maxLength: 128, description: '{n}, {n:03}, {tag}, {label.KEY}', examples: ['web-{n:03}'] }))),
  kernel_params: Type.Optional(Type.Array(Type.String({ maxLength: 256 }), { maxItems: 32 })),
  auto_build: Type.Optional(Type.Boolean()),
  health_check: Type.Optional(Nullable(Type.String({ maxLength: 1024, description: 'one printable line; null or "" removes it', examples: ['systemctl is-active nginx'] }))),
  skip_boot_check: Type.Optional(Type.Boolean()),
};
const CreateBody = Type.Object({ name: Type.String({ maxLength: 63, examples: ['web'] }), ...Fields }, { additionalProperties: false });
const UpdateBody = Type.Object(Fields, { additionalProperties: false, minProperties: 1 });
const NameParam = Type.Object({ name: Type.String({ maxLength: 63 }) });
type Name = { Params: Static<typeof NameParam> };

/** `/api/v1/profiles`: viewers read; operators create, change and delete (409 while machines use one). */
export function registerProfileRoutes(app: FastifyInstance, { profiles }: ProfileRouteOptions): void {
  app.get(
    '/api/v1/profiles',
    {
      config: { access: 'viewer' },
      schema: { tags: ['fleet'], summary: 'Profiles, with how many machines use each and how many are out of date', response: { 200: Type.Object({ items: Type.Array(ProfileView) }), ...errorResponses(401) } },
    },
    async () => ({ items: await profiles.list() }),
  );

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/api/v1/profiles',
    {
      config: { access: 'operator' },
      bodyLimit: 512 * 1024,
      schema: { tags: ['fleet'], summary: 'Create a profile', body: CreateBody, response: { 201: ProfileView, ...errorResponses(400, 401, 403, 409, 413) } },
    },
    async (request, reply) => reply.code(201).send(await profiles.create(request.body, request.actor)),
  );

  app.get<Name>(
    '/api/v1/profiles/:name',
    {
      config: { access: 'viewer' },
      schema: { tags: ['fleet'], summary: 'One profile', params: NameParam, response: { 200: ProfileView, ...errorResponses(401, 404) } },
    },
    async (request) => profiles.get(request.params.name),
  );

  app.put<Name & { Body: Static<typeof UpdateBody> }>(
    '/api/v1/profiles/:name',
    {
      config: { access: 'operator' },
      bodyLimit: 512 * 1024,
      schema: {
        tags: ['fleet'],
        summary: 'Change a profile (partial); its machines’ out_of_date follows at once',
        params: NameParam,
        body: UpdateBody,
        response: { 200: ProfileView, ...errorResponses(400, 401, 403, 404, 413) },
      },
    },
    async (request) => profiles.update(request.params.name, request.body, request.actor),
  );

  app.delete<Name>(
    '/api/v1/profiles/:name',
    {
      config: { access: 'operator' },
      schema: { tags: ['fleet'], summary: 'Delete a profile no machine or rule uses (409 says how many do)', params: NameParam, response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 409) } },
    },
    async (request, reply) => {
      await profiles.remove(request.params.name, request.actor);
      return reply.code(204).send();
    },
  );
}
