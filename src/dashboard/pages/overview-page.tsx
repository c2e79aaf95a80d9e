import type { FC } from 'hono/jsx';
import { MACHINE_STATUSES } from '../../core/lifecycle.ts';
import type { BackupRecord } from '../../core/backup-record.ts';
import type { BuildSummary, EventSummary } from '../../core/ports.ts';
import { shortNixpkgs } from '../../core/build-nixpkgs.ts';
import { Bars, Donut } from '../charts.tsx';
import { Alert, CsrfField, FirstMachineHint, Layout, StatusBadge, When, may, type PageContext } from '../components.tsx';
import { noBuilderNotice, type BuilderStatus } from '../../core/builder-presence.ts';
import type { FleetSummary } from '../fleet-summary.ts';
import { formatBinaryBytes, formatCount, formatDecimalBytes, formatDuration } from '../format.ts';
import { machineRef } from '../../core/machine-service.ts';

/** What the overview shows. */
export interface OverviewData {
  summary: FleetSummary;
  events: EventSummary[];
  builds: BuildSummary[];
  bootUrl: string;
  /** The last whole `metal backup`, if one was recorded. */
  lastBackup: BackupRecord | undefined;
  /** Every builder with a presence row, live or silent. */
  builders: BuilderStatus[];
  /** Builds waiting for a builder. */
  pendingBuilds: number;
}

/** A day and a bit: past this a daily backup was missed (as the MetalBackupOld alert says). */
const BACKUP_OLD_MS = 26 * 3600 * 1000;

const TOP = 8;

/** The live part of the overview, also served alone for polling. */
export const OverviewBody: FC<{ data: OverviewData; page: PageContext }> = ({ data, page }) => {
  const { summary } = data;
  const noBuilder = data.pendingBuilds > 0 ? noBuilderNotice(data.builders) : undefined;
  return (
    <div id="overview" hx-get="/?fragment=overview" hx-trigger="every 5s" hx-swap="outerHTML">
      {noBuilder && <Alert kind="warning">{`${formatCount(data.pendingBuilds)} build${data.pendingBuilds === 1 ? ' waits' : 's wait'}. ${noBuilder}`}</Alert>}
      {summary.total === 0 ? (
        <FirstMachineHint bootUrl={data.bootUrl} />
      ) : (
        <>
          <section class="stats" aria-label="Fleet capacity">
            <Stat label="Machines" value={formatCount(summary.total)} />
            <Stat label="CPU cores" value={formatCount(summary.cores)} note={`${formatCount(summary.threads)} threads`} />
            <Stat label="Memory" value={formatBinaryBytes(summary.memoryBytes)} />
            <Stat label="Disk" value={formatDecimalBytes(summary.diskBytes)} />
            <BackupStat record={data.lastBackup} />
            <BuildersStat builders={data.builders} pending={data.pendingBuilds} />
          </section>
          <div class="grid-3">
            <section class="card" aria-labelledby="by-status">
              <h2 id="by-status">By status</h2>
              <Donut
                title="Machines by status"
                centre={formatCount(summary.total)}
                data={MACHINE_STATUSES.map((s) => ({ label: s, value: summary.byStatus[s], tone: s, href: `/machines?status=${s}` }))}
              />
            </section>
            <section class="card" aria-labelledby="by-model">
              <h2 id="by-model">By model</h2>
              <Bars title="Machines by model" data={withOther(summary.byModel)} />
            </section>
            <section class="card" aria-labelledby="by-vendor">
              <h2 id="by-vendor">By vendor</h2>
              <Bars title="Machines by vendor" data={withOther(summary.byVendor)} />
            </section>
          </div>
        </>
      )}
      <div class="grid-2">
        <section class="card" aria-labelledby="recent-builds">
          <h2 id="recent-builds">Recent builds</h2>
          {data.builds.length === 0 ? (
            <p class="muted">No builds yet. Open a machine, give it a hostname and a configuration, and press Build.</p>
          ) : (
            <BuildList builds={data.builds} page={page} showMachine />
          )}
        </section>
        <section class="card" aria-labelledby="recent-events">
          <h2 id="recent-events">Recent events</h2>
          {data.events.length === 0 ? <p class="muted">Nothing has happened yet.</p> : <EventList events={data.events} page={page} showMachine />}
        </section>
      </div>
    </div>
  );
};

/** The fleet at a glance. */
export const OverviewPage: FC<{ data: OverviewData; page: PageContext }> = ({ data, page }) => (
  <Layout title="Overview" page={page} active="/">
    <h1>Fleet overview</h1>
    <OverviewBody data={data} page={page} />
  </Layout>
);

const Stat: FC<{ label: string; value: string; note?: string; warn?: boolean }> = ({ label, value, note, warn }) => (
  <div class={warn ? 'stat stat-warn' : 'stat'}>
    <div class="stat-value">{value}</div>
    <div class="stat-label">{label}</div>
    {note && <div class="stat-note">{note}</div>}
  </div>
);

/** How many builders run, and how many builds they run of how many they could. */
const BuildersStat: FC<{ builders: BuilderStatus[]; pending: number }> = ({ builders, pending }) => {
  const live = builders.filter((b) => b.live);
  if (live.length === 0) return <Stat label="Builders" value="none" note={pending > 0 ? `${formatCount(pending)} build${pending === 1 ? ' waits' : 's wait'}` : 'metal builder (docs/builder.md)'} warn={pending > 0} />;
  const running = live.reduce((n, b) => n + b.running, 0);
  const slots = live.reduce((n, b) => n + b.concurrency, 0);
  return <Stat label={live.length === 1 ? 'Builder' : 'Builders'} value={formatCount(live.length)} note={`${formatCount(running)} of ${formatCount(slots)} build slots busy${pending > 0 ? `, ${formatCount(pending)} waiting` : ''}`} />;
};

/** How old the last backup is: a warning when none was recorded or it is older than a day and a bit. */
const BackupStat: FC<{ record: BackupRecord | undefined; now?: Date }> = ({ record, now = new Date() }) => {
  if (!record) return <Stat label="Last backup" value="none" note="metal backup (docs/deploy.md)" warn />;
  const old = now.getTime() - record.at.getTime() > BACKUP_OLD_MS;
  const age = formatAge(record.at, now);
  return <Stat label="Last backup" value={age === undefined ? 'just now' : `${age} ago`} note={`${formatCount(record.rows)} rows, ${record.at.toISOString().slice(0, 16).replace('T', ' ')} UTC`} warn={old} />;
};

/** `3 h`, `2 d`: how long ago, coarsely; undefined under a minute. */
function formatAge(at: Date, now: Date): string | undefined {
  const minutes = Math.max(0, Math.round((now.getTime() - at.getTime()) / 60_000));
  if (minutes < 1) return undefined;
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} d`;
}

/** Events newest first as a timeline. */
/** Builds with their status, duration and age; `showMachine` adds which machine each is for. */
export const BuildList: FC<{
  builds: BuildSummary[];
  page: PageContext;
  showMachine?: boolean;
  /** Builds the machine could boot instead (a "Boot this build" form posts to `path`/boot-build). */
  bootable?: { ids: number[]; path: string };
}> = ({ builds, page, showMachine, bootable }) => (
  <div class="table-scroll">
    <table class="compact">
      <thead>
        <tr>
          <th scope="col">Build</th>
          {showMachine ? <th scope="col">Machine</th> : null}
          <th scope="col">Status</th>
          <th scope="col">Duration</th>
          <th scope="col">nixpkgs</th>
          <th scope="col">Requested</th>
          {bootable ? <th scope="col"><span class="visually-hidden">Actions</span></th> : null}
        </tr>
      </thead>
      <tbody>
        {builds.map((b) => (
          <tr>
            <td>
              <a href={`/builds/${b.id}`}>#{b.id}</a>
            </td>
            {showMachine ? (
              <td>
                <a href={`/machines/${encodeURIComponent(machineRef(b.service_tag))}`}>{b.hostname}</a>
              </td>
            ) : null}
            <td>
              <StatusBadge status={b.status} />
            </td>
            <td>{formatDuration(b.started_at, b.completed_at, page.now)}</td>
            <td class="mono" title={b.nixpkgs_revision ?? b.nixpkgs_version ?? undefined}>
              {shortNixpkgs({ revision: b.nixpkgs_revision, version: b.nixpkgs_version }).replace(/^-$/, '—')}
            </td>
            <td>
              <When iso={b.created_at} now={page.now} />
            </td>
            {bootable ? (
              <td>
                {bootable.ids.includes(b.id) && may(page, 'operator') ? (
                  <form method="post" action={`${bootable.path}/boot-build`} class="inline">
                    <CsrfField page={page} />
                    <input type="hidden" name="build_id" value={String(b.id)} />
                    <button type="submit" class="small" title="Point the machine at this build; it boots it at its next boot">
                      Boot this build
                    </button>
                  </form>
                ) : null}
              </td>
            ) : null}
          </tr>
        ))}
      </tbody>
    </table>
  </div>
);

export const EventList: FC<{ events: EventSummary[]; page: PageContext; showMachine?: boolean }> = ({ events, page, showMachine }) => (
  <ol class="timeline">
    {events.map((e) => (
      <li>
        <span class="event-kind">{e.kind}</span>
        <span class="event-message">
          {showMachine && e.service_tag && (
            <>
              <a href={`/machines/${encodeURIComponent(machineRef(e.service_tag))}`}>{e.service_tag}</a>:{' '}
            </>
          )}
          {e.message}
        </span>
        <span class="event-meta">
          {e.actor} · <When iso={e.created_at} now={page.now} />
        </span>
      </li>
    ))}
  </ol>
);

function withOther(groups: Array<[string, number]>) {
  const top = groups.slice(0, TOP).map(([label, value]) => ({ label, value, tone: 'accent' }));
  const rest = groups.slice(TOP).reduce((s, [, n]) => s + n, 0);
  if (rest > 0) top.push({ label: `${groups.length - TOP} others`, value: rest, tone: 'muted' });
  return top;
}
