import type { FastifyInstance } from 'fastify';
import type { DashboardDeps } from './dashboard-deps.ts';
import type { FleetSummaryCache } from './fleet-summary.ts';
import { MachineTable, MachinesPage, parseMachineQuery, type MachinesData } from './pages/machines-page.tsx';
import { OverviewBody, OverviewPage, type OverviewData } from './pages/overview-page.tsx';
import { field, pageContext, queryParam, sendHtml } from './render.ts';
import { parseSelector, type Selector } from '../core/labels.ts';
import { LAST_BACKUP_SETTING, parseBackupRecord } from '../core/backup-record.ts';
import { builderStatuses } from '../core/builder-presence.ts';
import { DomainError, InvalidInputError } from '../core/errors.ts';
import { toHttpError } from '../http/error-handler.ts';
import { ErrorPage } from './pages/login-page.tsx';

const NOTICES: Record<string, string> = { deleted: 'The machine was deleted.' };

/** `bulk-<action>-<ok>-<of>` → a sentence (numbers only: nothing else from the URL is shown). */
function bulkNotice(notice: string | undefined): string | undefined {
  const m = /^bulk-(build|set|label|dry)-(\d{1,6})-(\d{1,6})$/.exec(notice ?? '');
  if (!m) return undefined;
  if (m[1] === 'dry') return `Dry run: ${m[2]} of ${m[3]} machines would be changed; nothing was changed.`;
  return `Bulk ${m[1]}: done on ${m[2]} of ${m[3]} machines${m[2] !== m[3] ? ' (the others were skipped: already building or not buildable)' : ''}.`;
}

/** GET / (the fleet overview) and GET /machines (the list); `?fragment=` serves the live part alone. */
export function registerFleetRoutes(app: FastifyInstance, deps: DashboardDeps, summary: FleetSummaryCache): void {
  app.get('/', { config: { access: 'viewer' } }, async (request, reply) => {
    const [fleet, events, builds, backup, builders, byStatus] = await Promise.all([
      summary.get(),
      deps.reads.events.recent(10),
      deps.reads.builds.recent(8),
      deps.reads.settings.get(LAST_BACKUP_SETTING),
      builderStatuses(deps.reads.builderPresence),
      deps.reads.builds.countByStatus(),
    ]);
    const data: OverviewData = { summary: fleet, events, builds, bootUrl: deps.bootUrl, lastBackup: parseBackupRecord(backup), builders, pendingBuilds: byStatus.pending ?? 0 };
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'overview') return sendHtml(reply, <OverviewBody data={data} page={page} />, true);
    return sendHtml(reply, <OverviewPage data={data} page={page} />);
  });

  app.get('/machines', { config: { access: 'viewer' } }, async (request, reply) => {
    const query = parseMachineQuery((request.query ?? {}) as Record<string, unknown>);
    let selector: Selector | undefined;
    let error: string | undefined;
    try {
      if (query.selector) selector = parseSelector(query.selector);
    } catch (err) {
      error = `Labels: ${(err as Error).message}`;
    }
    const { items, total } = error
      ? { items: [], total: 0 }
      : await deps.machines.list({
          ...(query.status ? { status: query.status } : {}),
          ...(query.search ? { search: query.search } : {}),
          ...(selector ? { selector } : {}),
          ...(query.stale ? { outOfDate: true } : {}),
          sort: query.sort,
          order: query.order,
          limit: query.limit,
          offset: query.offset,
        });
    const notice = NOTICES[queryParam(request, 'notice') ?? ''] ?? bulkNotice(queryParam(request, 'notice'));
    const power = await deps.power.states(items.map((m) => m.id));
    const profiles = deps.fleet && (query.selector || query.select) ? (await deps.fleet.profiles.list()).map((p) => p.name) : undefined;
    const data: MachinesData = { query, items, total, bootUrl: deps.bootUrl, power, ...(notice ? { notice } : {}), ...(error ? { error } : {}), ...(profiles ? { profiles } : {}) };
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'table') return sendHtml(reply, <MachineTable data={data} page={page} />, true);
    return sendHtml(reply, <MachinesPage data={data} page={page} />);
  });

  // Bulk actions from the machine list, on every machine its label selector matches.
  app.post('/machines/bulk', { config: { access: 'operator' } }, async (request, reply) => {
    if (!deps.fleet) throw new InvalidInputError('bulk actions are not available here');
    const byIds = field(request.body, 'mode') === 'ids';
    const selector = field(request.body, 'selector');
    const action = field(request.body, 'action');
    const dry = field(request.body, 'dry_run') === 'yes';
    const back = byIds ? '/machines?select=yes' : `/machines?selector=${encodeURIComponent(selector)}`;
    try {
      // Ticked boxes arrive as one `ids` value or several.
      const raw = (request.body as Record<string, unknown> | undefined)?.ids;
      const ids = (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string' && v !== '');
      if (byIds && ids.length === 0) throw new InvalidInputError('tick at least one machine');
      const which = byIds ? { ids } : { selector };
      let body: Parameters<NonNullable<typeof deps.fleet>['bulk']['run']>[0];
      if (action === 'build') body = { action: 'build', ...which };
      else if (action === 'set') body = { action: 'set', ...which, profile: field(request.body, 'profile') || null };
      else if (action === 'label') {
        const text = field(request.body, 'label');
        const at = text.indexOf('=');
        if (at <= 0) throw new InvalidInputError('label must be key=value');
        body = { action: 'set', ...which, labels: { [text.slice(0, at).trim()]: text.slice(at + 1).trim() } };
      } else throw new InvalidInputError('action must be build, set or label');
      const answer = await deps.fleet.bulk.run({ ...body, dry_run: dry }, request.actor);
      const ok = answer.results.filter((r) => r.ok).length;
      return reply.redirect(`${back}&notice=bulk-${dry ? 'dry' : action}-${ok}-${answer.matched}`, 303);
    } catch (err) {
      if (!(err instanceof DomainError) || err.code === 'unauthorized' || err.code === 'forbidden') throw err;
      return sendHtml(reply.code(toHttpError(err).status), <ErrorPage status={toHttpError(err).status} message={`${err.message} (back: ${back})`} signedIn={true} />);
    }
  });
}
