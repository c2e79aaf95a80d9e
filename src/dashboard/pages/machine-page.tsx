import type { FC } from 'hono/jsx';
import type { IdentityConflict, Machine } from '../../core/types.ts';
import type { BuildSummary, EventSummary } from '../../core/ports.ts';
import { Alert, CsrfField, Fact, Layout, PowerBadge, StatusBadge, When, may, type PageContext } from '../components.tsx';
import { formatTimestamp } from '../format.ts';
import { HardwareSection } from './hardware-section.tsx';
import { ConfigEditor, otherFiles, type FormFile } from './config-editor.tsx';
import { BuildList, EventList } from './overview-page.tsx';
import { machineRef } from '../../core/machine-service.ts';
import { distinctNixpkgs } from '../../core/build-nixpkgs.ts';

/** What the machine page shows. */
export interface MachineData {
  machine: Machine;
  builds: BuildSummary[];
  events: EventSummary[];
  /** The build whose image the machine boots now. */
  imageBuildId: number | null;
  /** Builds it could boot instead ("Boot this build"); undefined when the dashboard has no such action. */
  bootable?: number[];
  /** The power state its BMC last reported; undefined when it has no BMC. */
  power?: { power_state: string; checked_at: string | null } | undefined;
  /** Values to put back in the form after a refused save. */
  form?: { hostname: string; description: string; nixos_config: string; files: FormFile[]; profile?: string };
  /** Profile names for the profile menu (shown when given). */
  profiles?: string[];
  error?: string;
  notice?: string;
}

/** Status, boot record, builds and events; served alone for polling. */
export const MachineLive: FC<{ data: MachineData; page: PageContext }> = ({ data, page }) => {
  const m = data.machine;
  const path = `/machines/${encodeURIComponent(machineRef(m.service_tag))}`;
  return (
    <div id="machine-live" hx-get={`${path}?fragment=live`} hx-trigger="every 3s" hx-swap="outerHTML">
      <section class="card" aria-labelledby="state">
        <h2 id="state">State</h2>
        <dl class="facts">
          <Fact label="Status">
            <StatusBadge status={m.status} live />
          </Fact>
          <Fact label="Boot image">{data.imageBuildId ? <a href={`/builds/${data.imageBuildId}`}>build #{data.imageBuildId}</a> : <span class="muted">no image yet</span>}</Fact>
          <Fact label="Last booted">
            {m.booted_build_id ? (
              <>
                <a href={`/builds/${m.booted_build_id}`}>build #{m.booted_build_id}</a>, <When iso={m.booted_at} now={page.now} />
                {m.booted_health && (
                  <span class={m.booted_health.ok ? 'muted' : 'badge badge-failed'} title={m.booted_health.output} data-health={m.booted_health.ok ? 'passed' : 'failed'}>
                    {' '}
                    health check {m.booted_health.ok ? 'passed' : 'failed'}
                    {m.booted_health.exit_code === null ? '' : ` (exit ${m.booted_health.exit_code})`}
                  </span>
                )}
              </>
            ) : (
              <span class="muted">has not booted an image of ours yet</span>
            )}
          </Fact>
          <Fact label="Last seen">
            <When iso={m.last_seen_at} now={page.now} />
          </Fact>
          <Fact label="Power">
            <PowerBadge power={data.power} />
            {data.power?.checked_at && (
              <>
                {' '}
                <span class="muted">
                  checked <When iso={data.power.checked_at} now={page.now} />
                </span>
              </>
            )}
          </Fact>
        </dl>
      </section>
      <section class="card" aria-labelledby="builds">
        <h2 id="builds">Builds</h2>
        {data.builds.length === 0 ? (
          <p class="muted">No builds yet.</p>
        ) : (
          <>
            <NixpkgsDrift builds={data.builds} />
            <BuildList builds={data.builds} page={page} {...(data.bootable ? { bootable: { ids: data.bootable, path } } : {})} />
          </>
        )}
      </section>
      <section class="card" aria-labelledby="events">
        <h2 id="events">Events</h2>
        {data.events.length === 0 ? <p class="muted">No events.</p> : <EventList events={data.events} page={page} />}
      </section>
    </div>
  );
};

/** Says so when this machine's recent builds were built from different nixpkgs (a channel moved, or METAL_NIXPKGS changed). */
const NixpkgsDrift: FC<{ builds: BuildSummary[] }> = ({ builds }) => {
  const used = distinctNixpkgs(builds.map((b) => ({ revision: b.nixpkgs_revision, version: b.nixpkgs_version })));
  if (used.length < 2) return null;
  return (
    <p class="alert alert-warning nixpkgs-drift" role="note">
      These builds used {String(used.length)} different nixpkgs: <span class="mono">{used.join(', ')}</span>. A rebuild uses the nixpkgs the builder has now.
    </p>
  );
};

/** The warning an identity claim raises, with the operator's two answers. */
const IdentityConflictBlock: FC<{ machine: Machine; conflict: IdentityConflict; path: string; page: PageContext }> = ({ machine, conflict, path, page }) => (
  <section class="alert alert-error identity-conflict" role="alert" aria-labelledby="identity-conflict">
    <h2 id="identity-conflict">Identity conflict</h2>
    <p>
      An enrollment as <span class="mono">{machine.service_tag}</span> from <span class="mono">{conflict.address ?? 'an unknown address'}</span>,{' '}
      <span title={formatTimestamp(conflict.claimed_at)}>{formatTimestamp(conflict.claimed_at)}</span>, claimed MAC <span class="mono">{conflict.mac_address}</span>
      {conflict.system_uuid && (
        <>
          {' '}
          and UUID <span class="mono">{conflict.system_uuid}</span>
        </>
      )}
      {conflict.held_by.length > 0 ? (
        <>
          , which {conflict.held_by.length === 1 ? 'belongs' : 'belong'} to <span class="mono">{conflict.held_by.join(', ')}</span>.
        </>
      ) : (
        <>, which this machine does not have.</>
      )}{' '}
      Nothing was changed. Until this is settled the machine is not found by its MAC or UUID at boot.
    </p>
    {may(page, 'operator') && (
      <div class="actions">
        <form method="post" action={`${path}/identity`} class="inline">
          <CsrfField page={page} />
          <input type="hidden" name="action" value="accept" />
          <button type="submit">Accept: the claimed values become this machine’s</button>
        </form>
        <form method="post" action={`${path}/identity`} class="inline">
          <CsrfField page={page} />
          <input type="hidden" name="action" value="reject" />
          <button type="submit" class="primary">
            Reject the claim
          </button>
        </form>
      </div>
    )}
  </section>
);

/** One machine in depth: its configuration editor, actions, hardware and history. */
export const MachinePage: FC<{ data: MachineData; page: PageContext }> = ({ data, page }) => {
  const m = data.machine;
  const path = `/machines/${encodeURIComponent(machineRef(m.service_tag))}`;
  const canEdit = may(page, 'operator');
  const form = data.form ?? { hostname: m.hostname ?? '', description: m.description ?? '', nixos_config: m.nixos_config ?? '', files: otherFiles(m.nixos_files) };
  return (
    <Layout title={m.hostname ?? m.service_tag} page={page} active="/machines">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/machines">Machines</a> / <span class="mono">{m.service_tag}</span>
      </nav>
      <div class="title-row">
        <h1>{m.hostname ?? m.service_tag}</h1>
        <StatusBadge status={m.status} />
        {canEdit && (
          <form method="post" action={`${path}/build`} class="inline">
            <CsrfField page={page} />
            <button type="submit" class="primary" disabled={!m.hostname || m.status === 'building'} title={buildHint(m)}>
              Build image
            </button>
          </form>
        )}
      </div>
      <p class="subtitle">
        <span class="mono">{m.service_tag}</span> · <span class="mono">{m.mac_address}</span> · enrolled{' '}
        <span title={formatTimestamp(m.enrolled_at)}>{formatTimestamp(m.enrolled_at)}</span>
      </p>
      {data.error && <Alert kind="error">{data.error}</Alert>}
      {data.notice && <Alert kind="notice">{data.notice}</Alert>}
      {m.identity_conflict && <IdentityConflictBlock machine={m} conflict={m.identity_conflict} path={path} page={page} />}
      <div class="machine-grid">
        <div>
          <section class="card" aria-labelledby="configuration">
            <h2 id="configuration">Configuration</h2>
            <form method={canEdit ? 'post' : undefined} action={canEdit ? path : undefined} class="stacked" id="machine-form">
              {canEdit && <CsrfField page={page} />}
              <label for="hostname">Hostname</label>
              <input id="hostname" name="hostname" value={form.hostname} maxlength={63} pattern="[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?" autocomplete="off" spellcheck={false} readonly={!canEdit} aria-describedby="hostname-help" />
              <small id="hostname-help">One DNS label: letters, digits and hyphens.</small>
              {data.profiles && (
                <>
                  <label for="profile">Profile</label>
                  <input type="hidden" name="profile_field" value="1" />
                  <select id="profile" name="profile" disabled={!canEdit} aria-describedby="profile-help">
                    <option value="">(none)</option>
                    {data.profiles.map((p) => (
                      <option value={p} selected={(form.profile ?? m.profile ?? '') === p}>
                        {p}
                      </option>
                    ))}
                  </select>
                  <small id="profile-help">
                    Its module is built before this machine’s own.{' '}
                    {m.out_of_date ? <strong data-out-of-date="true">Out of date: its image was built from another configuration.</strong> : m.profile ? 'Up to date.' : ''}
                  </small>
                </>
              )}
              <label for="description">Description</label>
              <textarea id="description" name="description" rows={2} maxlength={4096} readonly={!canEdit}>
                {`\n${form.description}`}
              </textarea>
              <ConfigEditor entry={form.nixos_config} files={form.files} canEdit={canEdit} />
              {canEdit && (
                <div class="actions">
                  <button type="submit" class="primary">
                    Save
                  </button>
                </div>
              )}
            </form>
          </section>
          {canEdit && data.power && <PowerSection path={path} page={page} />}
          <HardwareSection hardware={m.hardware} />
          {canEdit && (
            <section class="card danger-zone" aria-labelledby="delete">
              <h2 id="delete">Delete</h2>
              <details>
                <summary>Delete this machine…</summary>
                <form method="post" action={`${path}/delete`} class="stacked">
                  <CsrfField page={page} />
                  <p>This removes the machine, its builds and its images. If it boots again it enrolls as new.</p>
                  <label for="confirm">
                    Type <span class="mono">{m.service_tag}</span> to confirm
                  </label>
                  <input id="confirm" name="confirm" required autocomplete="off" spellcheck={false} />
                  <div class="actions">
                    <button type="submit" class="danger">
                      Delete machine
                    </button>
                  </div>
                </form>
              </details>
            </section>
          )}
        </div>
        <MachineLive data={data} page={page} />
      </div>
    </Layout>
  );
};

/**
 * Power buttons (operators): on and a fresh status at once; off, cycle and reset interrupt the running
 * machine, so each sits behind a confirmation.
 */
const PowerSection: FC<{ path: string; page: PageContext }> = ({ path, page }) => (
  <section class="card" aria-labelledby="power">
    <h2 id="power">Power</h2>
    <div class="actions">
      <form method="post" action={`${path}/power`} class="inline">
        <CsrfField page={page} />
        <input type="hidden" name="action" value="on" />
        <button type="submit">Power on</button>
      </form>
      <form method="post" action={`${path}/power`} class="inline">
        <CsrfField page={page} />
        <input type="hidden" name="action" value="status" />
        <button type="submit">Check now</button>
      </form>
    </div>
    {(['off', 'cycle', 'reset'] as const).map((action) => (
      <details>
        <summary>Power {action}…</summary>
        <form method="post" action={`${path}/power`} class="stacked">
          <CsrfField page={page} />
          <input type="hidden" name="action" value={action} />
          <label>
            <input type="checkbox" name="confirm" value="yes" required /> {action === 'off' ? 'Switch the machine off now (not a clean shutdown)' : `${action === 'cycle' ? 'Cycle' : 'Reset'} the running machine now`}
          </label>
          {action !== 'off' && (
            <label>
              <input type="checkbox" name="boot_device" value="pxe" /> Boot from the network (PXE) next
            </label>
          )}
          <div class="actions">
            <button type="submit" class="danger">
              Power {action}
            </button>
          </div>
        </form>
      </details>
    ))}
  </section>
);

/** Why Build is unavailable, shown as its tooltip; undefined when it can be pressed. */
function buildHint(m: Machine): string | undefined {
  if (!m.hostname) return 'Set and save a hostname first';
  if (m.status === 'building') return 'A build of this machine is already pending or running';
  return undefined;
}
