import type { FastifyInstance } from 'fastify';
import { InvalidInputError } from '../core/errors.ts';
import { MAX_ID, isRowId } from '../core/validation.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import type { BuildLogStreams } from './build-log-stream.ts';
import { BuildPage, type BuildData } from './pages/build-page.tsx';
import { readPublishedImage } from '../images/published-image.ts';
import { builderStatuses, noBuilderNotice } from '../core/builder-presence.ts';
import { pageContext, queryParam, sendHtml } from './render.ts';

type Id = { Params: { id: string } };

const NOTICES: Record<string, string> = { cancelled: 'The build was cancelled.' };

function buildId(raw: string): number {
  if (!isRowId(raw)) throw new InvalidInputError(`build id ${JSON.stringify(raw.slice(0, 40))} is not a number from 1 to ${MAX_ID}`);
  return Number(raw);
}

/** The build page, its live log stream, and cancel. */
export function registerBuildRoutes(app: FastifyInstance, deps: DashboardDeps, streams: BuildLogStreams): void {
  app.get<Id>('/builds/:id', { config: { access: 'viewer' } }, async (request, reply) => {
    const build = await deps.builds.get(buildId(request.params.id));
    const machine = await deps.reads.machines.findById(build.machine_id);
    const image = build.status === 'success' ? await readPublishedImage(deps.images, build.id, build.artifact_url) : null;
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    // A build waiting with no builder running would wait for ever without a word: the page says so.
    const noBuilder = build.status === 'pending' ? noBuilderNotice(await builderStatuses(deps.reads.builderPresence)) : undefined;
    const data: BuildData = { build, serviceTag: machine?.service_tag ?? null, image, ...(notice ? { notice } : {}), ...(noBuilder ? { noBuilder } : {}) };
    return sendHtml(reply, <BuildPage data={data} page={pageContext(request)} />);
  });

  app.get<Id>('/builds/:id/stream', { config: { access: 'viewer' } }, async (request, reply) => {
    const build = await deps.builds.get(buildId(request.params.id));
    const offsetParam = Number(queryParam(request, 'offset') ?? 0);
    const offset = Number.isSafeInteger(offsetParam) && offsetParam > 0 ? Math.min(offsetParam, build.log_output.length) : 0;
    if (request.method === 'HEAD') return reply.type('text/event-stream; charset=utf-8').send();
    // Admitted before the response starts, so one stream too many gets a normal 429 page.
    let signOut = () => {};
    const release = deps.streamGuard.admit(request, () => signOut());
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-accel-buffering': 'no',
    });
    signOut = streams.start(deps, build.id, offset, reply.raw, release);
  });

  app.post<Id>('/builds/:id/cancel', { config: { access: 'operator' } }, async (request, reply) => {
    const build = await deps.builds.cancel(buildId(request.params.id), request.actor);
    return reply.redirect(`/builds/${build.id}?notice=cancelled`, 303);
  });
}
