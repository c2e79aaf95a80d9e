import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import { MAX_ID } from '../core/validation.ts';
import { MAX_HEALTH_OUTPUT } from '../core/boot-health.ts';
import type { BootedReport, BuildLifecycle } from '../core/build-lifecycle.ts';
import type { Logger } from '../core/logger.ts';
import type { BootScriptResolver, KeptAnswer, ResolvedScript, ScriptKind } from './boot-script-resolver.ts';
import { renderEntryScript } from './ipxe-script.ts';
import type { LastSeenRecorder } from './last-seen-recorder.ts';

/** The type of every script answer. */
export const SCRIPT_TYPE = 'text/plain; charset=utf-8';
/** The route templates of the script routes, as metrics label them. */
export const ENTRY_ROUTE = '/boot.ipxe';
export const MACHINE_ROUTE = '/nixos/machines/:file';
/**
 * The longest script name the router takes (its `maxParamLength`): long enough for any serial a
 * vendor puts in DMI, so an invalid one still gets a script by MAC or UUID.
 */
export const MAX_SCRIPT_NAME_LENGTH = 1024;
/** What a machine script's file name ends with. */
export const SCRIPT_SUFFIX = '.ipxe';

/** What the script routes use. */
export interface ScriptRouteOptions {
  bootUrl: string;
  resolver: Pick<BootScriptResolver, 'resolve' | 'resolveNow' | 'keptAnswer' | 'imageOf'>;
  lastSeen: Pick<LastSeenRecorder, 'seen' | 'seenOnce'>;
  builds: Pick<BuildLifecycle, 'recordBooted' | 'rebootRequested'>;
  logger: Logger;
  /** Counts scripts by the decision that chose them. */
  metrics?: { bootScript(kind: string): void };
}

/**
 * The answers of the script routes, apart from HTTP: the Fastify routes and the lean front
 * (`script-front.ts`) both serve these, so the two cannot answer differently.
 */
export interface ScriptAnswers {
  /** `GET /boot.ipxe`: the same text for every machine. */
  readonly entryScript: string;
  /** `entryScript` as UTF-8. */
  readonly entryBody: Buffer;
  /**
   * `GET /nixos/machines/<file>`: `file` as decoded from the path, `mac` and `uuid` as parsed from the
   * query (anything: a string, an array for a repeated key, or undefined). Records last_seen_at and
   * counts the script; a file not ending in `.ipxe` is a NotFoundError.
   */
  machineScript(file: string, mac: unknown, uuid: unknown): Promise<{ kind: ScriptKind; script: string }>;
  /**
   * `machineScript` without waiting, as bytes to frame and mint a token into, when the resolver has
   * the answer in memory (`keptAnswer`); else undefined. Recorded and counted as `machineScript` is.
   */
  machineAnswerNow(file: string, mac: unknown, uuid: unknown): KeptAnswer | undefined;
}

export function createScriptAnswers(options: Omit<ScriptRouteOptions, 'builds'>): ScriptAnswers {
  const { resolver, lastSeen, logger, metrics } = options;
  /** Counts and logs a script served (last_seen_at is recorded by the caller). */
  const counted = <T extends Pick<ResolvedScript, 'kind' | 'machine'>>(file: string, resolved: T): T => {
    metrics?.bootScript(resolved.kind);
    if (logger.isLevelEnabled('debug')) {
      const tag = resolved.machine?.serviceTag;
      logger.debug({ file, kind: resolved.kind, service_tag: tag ?? null }, `boot: ${resolved.kind} script served${tag ? ` to ${tag}` : ''}`);
    }
    return resolved;
  };
  const entryScript = renderEntryScript(options.bootUrl);
  return {
    entryScript,
    entryBody: Buffer.from(entryScript, 'utf8'),
    async machineScript(file, mac, uuid) {
      if (!file.endsWith(SCRIPT_SUFFIX)) throw new NotFoundError('boot scripts are named <service tag>.ipxe');
      const tag = file.slice(0, -SCRIPT_SUFFIX.length);
      const resolved = resolver.resolveNow(tag, mac, uuid) ?? (await resolver.resolve(tag, mac, uuid));
      if (resolved.machine) lastSeen.seen(resolved.machine.id);
      return counted(file, resolved);
    },
    machineAnswerNow(file, mac, uuid) {
      if (!file.endsWith(SCRIPT_SUFFIX)) return undefined;
      const kept = resolver.keptAnswer(file.slice(0, -SCRIPT_SUFFIX.length), mac, uuid);
      if (kept === undefined) return undefined;
      lastSeen.seenOnce(kept);
      return counted(file, kept);
    },
  };
}

/** The iPXE script routes and the booted report: what a machine asks for at every boot. */
export function registerScriptRoutes(app: FastifyInstance, options: ScriptRouteOptions, answers: ScriptAnswers = createScriptAnswers(options)): void {
  app.get(ENTRY_ROUTE, { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(SCRIPT_TYPE).header('cache-control', 'no-store').send(answers.entryScript),
  );

  app.get<{ Params: { file: string }; Querystring: Record<string, unknown> }>(
    MACHINE_ROUTE,
    { config: { access: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const { script } = await answers.machineScript(request.params.file, request.query.mac, request.query.uuid);
      return reply.type(SCRIPT_TYPE).header('cache-control', 'no-store').send(script);
    },
  );

  app.post<{ Params: { tag: string }; Body: BootedReport }>(
    '/api/v1/machines/:tag/booted',
    {
      config: { access: 'public' },
      // Room for a health result: 2 KiB of output, JSON-escaped.
      bodyLimit: 16384,
      schema: {
        hide: true,
        body: {
          type: 'object',
          required: ['build_id', 'token'],
          properties: {
            build_id: { type: 'integer', minimum: 1, maximum: MAX_ID },
            token: { type: 'string', minLength: 1, maxLength: 512 },
            // Checked in full by the core (assertBootHealth); the schema only bounds it.
            health: {
              type: 'object',
              required: ['ok'],
              additionalProperties: false,
              properties: {
                ok: { type: 'boolean' },
                exit_code: { anyOf: [{ type: 'integer', minimum: 0, maximum: 255 }, { type: 'null' }] },
                output: { type: 'string', maxLength: MAX_HEALTH_OUTPUT },
              },
            },
          },
        },
      },
    },
    async (request) => options.builds.recordBooted(request.params.tag, request.body),
  );

  // The in-image agent asks every minute, with the token its booted report was accepted with:
  // 200 `{"reboot": true}` when its machine was pointed at another image and should reboot into it,
  // 204 when there is nothing to do. The request is in the database as soon as it is written; this
  // server's decision table follows a moment later (a change made in this process once it is
  // signalled, another process's within about a second). Until the table serves another build than
  // the running one the answer stays 204: a reboot before that would boot the same image again.
  app.get<{ Params: { tag: string }; Querystring: { build_id: number; token: string } }>(
    '/api/v1/machines/:tag/reboot-request',
    {
      config: { access: 'public' },
      schema: {
        hide: true,
        querystring: {
          type: 'object',
          required: ['build_id', 'token'],
          properties: { build_id: { type: 'integer', minimum: 1, maximum: MAX_ID }, token: { type: 'string', minLength: 1, maxLength: 512 } },
        },
      },
    },
    async (request, reply) => {
      const reboot = (await options.builds.rebootRequested(request.params.tag, request.query)) && (await options.resolver.imageOf(request.params.tag)) !== request.query.build_id;
      if (!reboot) return reply.code(204).header('cache-control', 'no-store').send();
      return reply.header('cache-control', 'no-store').send({ reboot: true });
    },
  );
}
