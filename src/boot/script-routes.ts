import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import { MAX_ID } from '../core/validation.ts';
import type { BootedReport, BuildLifecycle } from '../core/build-lifecycle.ts';
import type { Logger } from '../core/logger.ts';
import type { BootScriptResolver } from './boot-script-resolver.ts';
import { renderEntryScript } from './ipxe-script.ts';
import type { LastSeenRecorder } from './last-seen-recorder.ts';

const SCRIPT_TYPE = 'text/plain; charset=utf-8';

/** What the script routes use. */
export interface ScriptRouteOptions {
  bootUrl: string;
  resolver: BootScriptResolver;
  lastSeen: LastSeenRecorder;
  builds: Pick<BuildLifecycle, 'recordBooted'>;
  logger: Logger;
  /** Counts scripts by the decision that chose them. */
  metrics?: { bootScript(kind: string): void };
}

/** The iPXE script routes and the booted report: what a machine asks for at every boot. */
export function registerScriptRoutes(app: FastifyInstance, options: ScriptRouteOptions): void {
  const { resolver, lastSeen, logger } = options;
  const entryScript = renderEntryScript(options.bootUrl);

  app.get('/boot.ipxe', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(SCRIPT_TYPE).header('cache-control', 'no-store').send(entryScript),
  );

  app.get<{ Params: { file: string }; Querystring: Record<string, unknown> }>(
    '/nixos/machines/:file',
    { config: { access: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const { file } = request.params;
      if (!file.endsWith('.ipxe')) throw new NotFoundError('boot scripts are named <service tag>.ipxe');
      const resolved = await resolver.resolve(file.slice(0, -'.ipxe'.length), request.query.mac, request.query.uuid);
      if (resolved.machine) lastSeen.seen(resolved.machine.id);
      options.metrics?.bootScript(resolved.kind);
      if (logger.isLevelEnabled('debug')) {
        const tag = resolved.machine?.serviceTag;
        logger.debug({ file, kind: resolved.kind, service_tag: tag ?? null }, `boot: ${resolved.kind} script served${tag ? ` to ${tag}` : ''}`);
      }
      return reply.type(SCRIPT_TYPE).header('cache-control', 'no-store').send(resolved.script);
    },
  );

  app.post<{ Params: { tag: string }; Body: BootedReport }>(
    '/api/v1/machines/:tag/booted',
    {
      config: { access: 'public' },
      bodyLimit: 4096,
      schema: {
        hide: true,
        body: {
          type: 'object',
          required: ['build_id', 'token'],
          properties: { build_id: { type: 'integer', minimum: 1, maximum: MAX_ID }, token: { type: 'string', minLength: 1, maxLength: 512 } },
        },
      },
    },
    async (request) => options.builds.recordBooted(request.params.tag, request.body),
  );
}
