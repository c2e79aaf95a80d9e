import type { Child, FC } from 'hono/jsx';
import { roleAtLeast, type Actor, type Role } from '../core/types.ts';
import { formatRelativeTime, formatTimestamp } from './format.ts';

/** What every page knows about the request: who is looking and the form token to echo back. */
export interface PageContext {
  actor: Actor;
  csrf: string;
  /** The moment "3 min ago" is measured from. */
  now: Date;
}

/** Whether the actor may use actions that need `role` (buttons are only drawn when this holds). */
export function may(page: PageContext, role: Role): boolean {
  return roleAtLeast(page.actor.role, role);
}

const NAV: Array<{ href: string; label: string; role: Role }> = [
  { href: '/', label: 'Overview', role: 'viewer' },
  { href: '/machines', label: 'Machines', role: 'viewer' },
  { href: '/profiles', label: 'Profiles', role: 'viewer' },
  { href: '/rules', label: 'Rules', role: 'viewer' },
  { href: '/rollouts', label: 'Rollouts', role: 'viewer' },
  { href: '/admin/users', label: 'Users', role: 'admin' },
  { href: '/admin/tokens', label: 'API tokens', role: 'admin' },
  { href: '/admin/webhooks', label: 'Webhooks', role: 'admin' },
];

/** The page frame: head with our own assets only, navigation, who is signed in, and the content. */
export const Layout: FC<{ title: string; page: PageContext | null; active?: string; children?: Child }> = ({ title, page, active, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="color-scheme" content="light dark" />
      <meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}' />
      <title>{`${title} · Metal Enrollment`}</title>
      <link rel="icon" href="/static/favicon.svg" type="image/svg+xml" />
      <link rel="stylesheet" href="/static/app.css" />
      <script src="/static/htmx.min.js" defer></script>
      <script src="/static/app.js" defer></script>
    </head>
    <body>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/">
          <span class="brand-mark" aria-hidden="true">▣</span> Metal Enrollment
        </a>
        {page && (
          <nav aria-label="Main">
            <ul>
              {NAV.filter((n) => may(page, n.role)).map((n) => (
                <li>
                  <a href={n.href} aria-current={active === n.href ? 'page' : undefined}>
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        {page && page.actor.kind !== 'anonymous' && (
          <div class="who">
            <span>
              {page.actor.name} <span class="role">{page.actor.role ?? ''}</span>
            </span>
            <form method="post" action="/logout">
              <CsrfField page={page} />
              <button type="submit" class="link-button">
                Log out
              </button>
            </form>
          </div>
        )}
      </header>
      <main id="main" tabindex={-1}>
        {children}
      </main>
    </body>
  </html>
);

/** A table's header row: one column header per name, and a last unnamed one for row actions. */
export const TableHead: FC<{ columns: readonly string[]; actions?: boolean }> = ({ columns, actions }) => (
  <thead>
    <tr>
      {columns.map((c) => (
        <th scope="col">{c}</th>
      ))}
      {actions && (
        <th scope="col">
          <span class="visually-hidden">Actions</span>
        </th>
      )}
    </tr>
  </thead>
);

/** The hidden anti-forgery field every form carries. */
export const CsrfField: FC<{ page: PageContext }> = ({ page }) => <input type="hidden" name="_csrf" value={page.csrf} />;

/** A small red button that posts to `action` (delete, remove, revoke), inline in a row or a card. */
export const DangerButtonForm: FC<{ page: PageContext; action: string; label: string; ariaLabel?: string }> = ({ page, action, label, ariaLabel }) => (
  <form method="post" action={action} class="inline">
    <CsrfField page={page} />
    <button type="submit" class="danger small" {...(ariaLabel ? { 'aria-label': ariaLabel } : {})}>
      {label}
    </button>
  </form>
);

const KNOWN_STATUSES = new Set(['enrolled', 'configured', 'building', 'ready', 'failed', 'pending', 'success', 'cancelled']);

/** A coloured status word; unknown values are shown as text with a neutral colour. */
export const StatusBadge: FC<{ status: string; live?: boolean }> = ({ status, live }) => (
  <span class={`badge badge-${KNOWN_STATUSES.has(status) ? status : 'unknown'}`} data-status={status} aria-live={live ? 'polite' : undefined}>
    {status}
  </span>
);

/** A machine's power state as its BMC last reported it; `no BMC` when it has none. */
export const PowerBadge: FC<{ power: { power_state: string; checked_at: string | null } | undefined }> = ({ power }) =>
  power ? (
    <span class={`badge power-${power.power_state}`} data-power={power.power_state} title={power.checked_at ? `checked ${formatTimestamp(power.checked_at)}` : 'not checked yet'}>
      {power.power_state === 'unknown' ? 'power ?' : `power ${power.power_state}`}
    </span>
  ) : (
    <span class="muted" data-power="none">
      no BMC
    </span>
  );

/** A relative time ("3 min ago") with the exact time on hover and for machines. */
export const When: FC<{ iso: string | null | undefined; now: Date }> = ({ iso, now }) =>
  iso ? (
    <time datetime={iso} title={formatTimestamp(iso)}>
      {formatRelativeTime(iso, now)}
    </time>
  ) : (
    <span class="muted">never</span>
  );

/** A notice or error line at the top of a page. */
export const Alert: FC<{ kind: 'error' | 'notice' | 'warning'; children?: Child }> = ({ kind, children }) => (
  <div class={`alert alert-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
    {children}
  </div>
);

/** What a newcomer sees before the first machine exists: how to get one in. */
export const FirstMachineHint: FC<{ bootUrl: string }> = ({ bootUrl }) => (
  <section class="empty-state" aria-labelledby="empty-title">
    <h2 id="empty-title">No machines yet</h2>
    <p>Machines appear here by themselves once they network-boot and enroll. Two ways to get the first one in:</p>
    <ol>
      <li>
        <strong>Without hardware:</strong> run <code>metal lab boot</code> on this host. It starts a QEMU virtual
        machine that PXE-boots from this server and enrolls.
      </li>
      <li>
        <strong>A real server:</strong> have its iPXE chain <code>{`${bootUrl}/boot.ipxe`}</code> (DHCP boot file, or an
        embedded script) and power it on. It boots the registration image, reports its hardware and shows up here.
      </li>
    </ol>
  </section>
);

/** A labelled value in a definition list. */
export const Fact: FC<{ label: string; children?: Child }> = ({ label, children }) => (
  <div class="fact">
    <dt>{label}</dt>
    <dd>{children}</dd>
  </div>
);
