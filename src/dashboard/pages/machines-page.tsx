import type { FC } from 'hono/jsx';
import { MACHINE_STATUSES, type MachineStatus } from '../../core/lifecycle.ts';
import type { Machine } from '../../core/types.ts';
import { Alert, CsrfField, FirstMachineHint, Layout, PowerBadge, StatusBadge, When, may, type PageContext } from '../components.tsx';
import { formatBinaryBytes, formatCount } from '../format.ts';
import { cpuSummary, knownDmiText, viewHardware } from '../hardware-view.ts';
import { machineRef } from '../../core/machine-service.ts';

/** Columns the list can be sorted by (each backed by the machine store's sort). */
export const SORT_KEYS = ['hostname', 'service_tag', 'status', 'last_seen_at', 'id'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** The list's filter, sort and page, as read from the query string. */
export interface MachineQuery {
  status?: MachineStatus;
  search?: string;
  /** A label selector as typed, e.g. `role=web,rack in (r12)` */
  selector?: string;
  /** Only machines out of date. */
  stale?: boolean;
  /** Selection mode: a box per machine for bulk actions (the table stops refreshing itself). */
  select?: boolean;
  sort: SortKey;
  order: 'asc' | 'desc';
  offset: number;
  limit: number;
}

/** Reads the list query leniently: unknown values fall back to defaults instead of failing the page. */
export function parseMachineQuery(q: Record<string, unknown>): MachineQuery {
  const str = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : undefined);
  const status = str('status');
  const sort = str('sort');
  const search = str('search')?.trim().slice(0, 200);
  const selector = str('selector')?.trim().slice(0, 1024);
  const offset = Number(str('offset') ?? 0);
  return {
    ...((MACHINE_STATUSES as readonly string[]).includes(status ?? '') ? { status: status as MachineStatus } : {}),
    ...(search ? { search } : {}),
    ...(selector ? { selector } : {}),
    ...(str('stale') === 'yes' ? { stale: true } : {}),
    ...(str('select') === 'yes' ? { select: true } : {}),
    sort: (SORT_KEYS as readonly string[]).includes(sort ?? '') ? (sort as SortKey) : 'id',
    order: str('order') === 'desc' ? 'desc' : 'asc',
    offset: Number.isSafeInteger(offset) && offset > 0 ? offset : 0,
    limit: 50,
  };
}

/** The query string for a list view, leaving defaults out. */
export function machineQueryString(q: MachineQuery, change: Partial<MachineQuery> = {}): string {
  const next = { ...q, ...change };
  const params = new URLSearchParams();
  if (next.status) params.set('status', next.status);
  if (next.search) params.set('search', next.search);
  if (next.selector) params.set('selector', next.selector);
  if (next.stale) params.set('stale', 'yes');
  if (next.select) params.set('select', 'yes');
  if (next.sort !== 'id') params.set('sort', next.sort);
  if (next.order !== 'asc') params.set('order', next.order);
  if (next.offset > 0) params.set('offset', String(next.offset));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** What the list shows. */
export interface MachinesData {
  query: MachineQuery;
  items: Machine[];
  total: number;
  bootUrl: string;
  notice?: string;
  /** Why the selector could not be used. */
  error?: string;
  /** Profiles, for the bulk form (shown to operators when given). */
  profiles?: string[];
  /** Power state of the listed machines that have a BMC, by machine id. */
  power?: ReadonlyMap<number, { power_state: string; checked_at: string | null }>;
}

const COLUMNS: Array<{ key: SortKey | null; label: string }> = [
  { key: 'status', label: 'Status' },
  { key: null, label: 'Power' },
  { key: 'hostname', label: 'Hostname' },
  { key: 'service_tag', label: 'Service tag' },
  { key: null, label: 'Profile' },
  { key: null, label: 'Labels' },
  { key: null, label: 'Model' },
  { key: null, label: 'CPU' },
  { key: null, label: 'Memory' },
  { key: 'last_seen_at', label: 'Last seen' },
];

/** The table with its pager; served alone for polling. */
export const MachineTable: FC<{ data: MachinesData; page: PageContext }> = ({ data, page }) => {
  const { query, items, total } = data;
  const filtered = Boolean(query.status || query.search || query.selector || query.stale);
  const first = total === 0 ? 0 : query.offset + 1;
  const last = Math.min(total, query.offset + items.length);
  const qs = machineQueryString(query);
  // While machines are being ticked the table stays put (a refresh would drop the ticks).
  const selecting = Boolean(query.select) && may(page, 'operator');
  const live = selecting ? {} : { 'hx-get': `/machines${qs}${qs ? '&' : '?'}fragment=table`, 'hx-trigger': 'every 5s', 'hx-swap': 'outerHTML' };
  return (
    <div id="machine-table" {...live}>
      {total === 0 && !filtered ? (
        <FirstMachineHint bootUrl={data.bootUrl} />
      ) : total === 0 ? (
        <p class="muted">No machine matches this filter.</p>
      ) : (
        <>
          <div class="table-scroll">
            <table class="machines">
              <caption class="visually-hidden">Machines, sorted by {query.sort}</caption>
              <thead>
                <tr>
                  {selecting && (
                    <th scope="col">
                      <span class="visually-hidden">Select</span>
                    </th>
                  )}
                  {COLUMNS.map((c) => (
                    <th scope="col" aria-sort={c.key && c.key === query.sort ? (query.order === 'asc' ? 'ascending' : 'descending') : undefined}>
                      {c.key ? (
                        <a href={`/machines${machineQueryString(query, { sort: c.key, order: c.key === query.sort && query.order === 'asc' ? 'desc' : 'asc', offset: 0 })}`}>
                          {c.label}
                          {c.key === query.sort ? (query.order === 'asc' ? ' ▲' : ' ▼') : ''}
                        </a>
                      ) : (
                        c.label
                      )}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {items.map((m) => {
                  const hw = viewHardware(m.hardware);
                  return (
                    <tr>
                      {selecting && (
                        <td>
                          <input type="checkbox" name="ids" value={`id:${m.id}`} form="bulk-form" aria-label={`Select ${m.service_tag}`} />
                        </td>
                      )}
                      <td>
                        <StatusBadge status={m.status} />
                        {m.out_of_date && m.status !== 'building' && (
                          <span class="badge badge-configured" title="its configuration changed since its image was built">
                            {' '}
                            out of date
                          </span>
                        )}
                        {m.identity_conflict && (
                          <span class="badge badge-failed" title="an enrollment claimed another MAC or UUID for this machine; open it to accept or reject">
                            {' '}
                            identity conflict
                          </span>
                        )}
                      </td>
                      <td>
                        <PowerBadge power={data.power?.get(m.id)} />
                      </td>
                      <td>
                        <a href={`/machines/${encodeURIComponent(machineRef(m.service_tag))}`}>{m.hostname ?? <span class="muted">(not set)</span>}</a>
                      </td>
                      <td>
                        <a href={`/machines/${encodeURIComponent(machineRef(m.service_tag))}`} class="mono">
                          {m.service_tag}
                        </a>
                      </td>
                      <td>{m.profile ? <a href={`/profiles/${encodeURIComponent(m.profile)}`} class="mono">{m.profile}</a> : <span class="muted">—</span>}</td>
                      <td>
                        <LabelChips labels={m.labels} query={query} />
                      </td>
                      <td class="clip">{[knownDmiText(hw.manufacturer), knownDmiText(hw.model)].filter(Boolean).join(' ') || '—'}</td>
                      <td class="clip">{cpuSummary(hw)}</td>
                      <td class="num">{formatBinaryBytes(hw.memoryBytes)}</td>
                      <td>
                        <When iso={m.last_seen_at} now={page.now} />
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages">
            <span>
              {formatCount(first)}–{formatCount(last)} of {formatCount(total)}
            </span>
            {query.offset > 0 ? (
              <a href={`/machines${machineQueryString(query, { offset: Math.max(0, query.offset - query.limit) })}`} rel="prev">
                ← Previous
              </a>
            ) : (
              <span class="muted">← Previous</span>
            )}
            {last < total ? (
              <a href={`/machines${machineQueryString(query, { offset: query.offset + query.limit })}`} rel="next">
                Next →
              </a>
            ) : (
              <span class="muted">Next →</span>
            )}
          </nav>
        </>
      )}
    </div>
  );
};

/** A machine's labels as chips; each links to the list narrowed to that label. */
const LabelChips: FC<{ labels: Record<string, string>; query: MachineQuery }> = ({ labels, query }) => {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return <span class="muted">—</span>;
  return (
    <span class="chips">
      {entries.map(([k, v]) => (
        <a class="chip mono" href={`/machines${machineQueryString(query, { selector: `${k}=${v}`, offset: 0 })}`} title={`only machines with ${k}=${v}`}>
          {k}={v}
        </a>
      ))}
    </span>
  );
};

/** Bulk actions on every machine the selector matches (operators; a dry run first is one click). */
const BulkForm: FC<{ data: MachinesData; page: PageContext }> = ({ data, page }) =>
  (data.query.selector || data.query.select) && !data.error && data.total > 0 && may(page, 'operator') ? (
    <form class="filters" method="post" action="/machines/bulk" aria-label="Bulk action" id="bulk-form">
      <CsrfField page={page} />
      {data.query.select ? (
        <>
          <input type="hidden" name="mode" value="ids" />
          <span>On the machines ticked below:</span>
        </>
      ) : (
        <>
          <input type="hidden" name="selector" value={data.query.selector} />
          <span>
            On the <strong>{data.total}</strong> machines matching <span class="mono">{data.query.selector}</span>:
          </span>
        </>
      )}
      <label>
        Action
        <select name="action">
          <option value="build">build</option>
          <option value="set">set profile</option>
          <option value="label">add label</option>
        </select>
      </label>
      <label>
        Profile
        <select name="profile">
          <option value="">(none)</option>
          {(data.profiles ?? []).map((p) => (
            <option value={p}>{p}</option>
          ))}
        </select>
      </label>
      <label>
        Label (key=value)
        <input name="label" maxlength={317} placeholder="env=prod" />
      </label>
      <label>
        <span>
          <input type="checkbox" name="dry_run" value="yes" /> dry run
        </span>
      </label>
      <button type="submit">Apply</button>
    </form>
  ) : null;

/** All machines: filter, search, label selector, sort, pages, and bulk actions on a selection. */
export const MachinesPage: FC<{ data: MachinesData; page: PageContext }> = ({ data, page }) => (
  <Layout title="Machines" page={page} active="/machines">
    <h1>Machines</h1>
    {data.notice && <Alert kind="notice">{data.notice}</Alert>}
    {data.error && <Alert kind="error">{data.error}</Alert>}
    <form class="filters" method="get" action="/machines" role="search">
      <label>
        Search
        <input type="search" name="search" value={data.query.search ?? ''} placeholder="tag, hostname, MAC, model, switch" maxlength={200} />
      </label>
      <label>
        Status
        <select name="status">
          <option value="">any</option>
          {MACHINE_STATUSES.map((s) => (
            <option value={s} selected={data.query.status === s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Labels
        <input name="selector" value={data.query.selector ?? ''} placeholder="role=web,rack in (r12,r13)" maxlength={1024} class="mono" />
      </label>
      <label>
        <span>
          <input type="checkbox" name="stale" value="yes" checked={Boolean(data.query.stale)} /> out of date
        </span>
      </label>
      {data.query.sort !== 'id' && <input type="hidden" name="sort" value={data.query.sort} />}
      {data.query.order !== 'asc' && <input type="hidden" name="order" value={data.query.order} />}
      <button type="submit">Filter</button>
    </form>
    {may(page, 'operator') && (
      <p>
        <a href={`/machines${machineQueryString(data.query, { select: !data.query.select, offset: 0 })}`}>{data.query.select ? 'Done selecting' : 'Select machines…'}</a>
      </p>
    )}
    <BulkForm data={data} page={page} />
    <MachineTable data={data} page={page} />
  </Layout>
);
