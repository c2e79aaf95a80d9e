import type { FastifyInstance } from 'fastify';
import type { DashboardDeps } from './dashboard-deps.ts';
import type { FleetSummaryCache } from './fleet-summary.ts';
import { MachineTable, MachinesPage, parseMachineQuery, type MachinesData } from './pages/machines-page.tsx';
import { OverviewBody, OverviewPage, type OverviewData } from './pages/overview-page.tsx';
import { pageContext, queryParam, sendHtml } from './render.ts';

const NOTICES: Record<string, string> = { deleted: 'The machine was deleted.' };

/** GET / (the fleet overview) and GET /machines (the list); `?fragment=` serves the live part alone. */
export function registerFleetRoutes(app: FastifyInstance, deps: DashboardDeps, summary: FleetSummaryCache): void {
  app.get('/', { config: { access: 'viewer' } }, async (request, reply) => {
    const [fleet, events, builds] = await Promise.all([summary.get(), deps.reads.events.recent(10), deps.reads.builds.recent(8)]);
    const data: OverviewData = { summary: fleet, events, builds, bootUrl: deps.bootUrl };
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'overview') return sendHtml(reply, <OverviewBody data={data} page={page} />, true);
    return sendHtml(reply, <OverviewPage data={data} page={page} />);
  });

  app.get('/machines', { config: { access: 'viewer' } }, async (request, reply) => {
    const query = parseMachineQuery((request.query ?? {}) as Record<string, unknown>);
    const { items, total } = await deps.machines.list({
      ...(query.status ? { status: query.status } : {}),
      ...(query.search ? { search: query.search } : {}),
      sort: query.sort,
      order: query.order,
      limit: query.limit,
      offset: query.offset,
    });
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    const power = await deps.power.states(items.map((m) => m.id));
    const data: MachinesData = { query, items, total, bootUrl: deps.bootUrl, power, ...(notice ? { notice } : {}) };
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'table') return sendHtml(reply, <MachineTable data={data} page={page} />, true);
    return sendHtml(reply, <MachinesPage data={data} page={page} />);
  });
}
