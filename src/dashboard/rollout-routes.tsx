import type { FastifyInstance } from 'fastify';
import { DomainError, NotFoundError } from '../core/errors.ts';
import { toHttpError } from '../http/error-handler.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { RolloutLive, RolloutPage, RolloutsLive, RolloutsPage } from './pages/rollouts-page.tsx';
import { pageContext, queryParam, sendHtml } from './render.ts';

type Id = { Params: { id: string } };

function rolloutId(value: string): number {
  if (!/^[1-9]\d{0,9}$/.test(value) || Number(value) > 2_147_483_647) throw new NotFoundError(`rollout ${value.slice(0, 20)} not found`);
  return Number(value);
}

/** /rollouts: every rollout with live per-wave progress; /rollouts/{id}: its machines, pause, resume, cancel. */
export function registerRolloutPages(app: FastifyInstance, rollouts: NonNullable<DashboardDeps['rollouts']>): void {
  app.get('/rollouts', { config: { access: 'viewer' } }, async (request, reply) => {
    const { items } = await rollouts.list(50, 0);
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'live') return sendHtml(reply, <RolloutsLive rollouts={items} page={page} />, true);
    return sendHtml(reply, <RolloutsPage rollouts={items} page={page} />);
  });

  app.get<Id>('/rollouts/:id', { config: { access: 'viewer' } }, async (request, reply) => {
    const rollout = await rollouts.get(rolloutId(request.params.id));
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'live') return sendHtml(reply, <RolloutLive rollout={rollout} page={page} />, true);
    return sendHtml(reply, <RolloutPage rollout={rollout} page={page} />);
  });

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<Id>(`/rollouts/:id/${action}`, { config: { access: 'operator' } }, async (request, reply) => {
      const id = rolloutId(request.params.id);
      try {
        await rollouts[action](id, request.actor);
        return reply.redirect(`/rollouts/${id}`, 303);
      } catch (err) {
        if (!(err instanceof DomainError) || err.code !== 'conflict') throw err;
        return sendHtml(reply.code(toHttpError(err).status), <RolloutPage rollout={await rollouts.get(id)} page={pageContext(request)} error={err.message} />);
      }
    });
  }
}
