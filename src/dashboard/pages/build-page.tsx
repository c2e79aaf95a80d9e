import type { FC } from 'hono/jsx';
import { isBuildFinished, type BuildStatus } from '../../core/lifecycle.ts';
import type { Build } from '../../core/types.ts';
import { Alert, CsrfField, Fact, Layout, may, type PageContext, StatusBadge, TableHead, When } from '../components.tsx';
import { formatDecimalBytes, formatDuration, formatTimestamp } from '../format.ts';
import type { PublishedImage } from '../../images/published-image.ts';
import { machineRef } from '../../core/machine-service.ts';

/** A build's files; a build from before several files were kept has its entry only. */
function configFilesOf(b: Build): Record<string, string> {
  return b.config_files && Object.keys(b.config_files).length > 0 ? b.config_files : { 'configuration.nix': b.config };
}

/** The nixpkgs a build recorded: version and revision, and where it came from. */
const NixpkgsFacts: FC<{ build: Build }> = ({ build }) => {
  const n = build.nixpkgs;
  if (!n) return <span class="muted">{build.status === 'success' ? 'not recorded by the entry' : '—'}</span>;
  return (
    <span class="nixpkgs">
      <span class="mono">{n.version ?? 'version unknown'}</span>
      {n.revision ? (
        <>
          {' '}
          revision{' '}
          <span class="mono" title={n.revision}>
            {n.revision}
          </span>
        </>
      ) : (
        <span class="muted"> (revision unknown)</span>
      )}
      {n.source && (
        <>
          {' '}
          from <span class="mono">{n.source}</span>
        </>
      )}
      {n.sha256 && (
        <>
          {' '}
          sha256 <span class="mono hash">{n.sha256}</span>
        </>
      )}
    </span>
  );
};

/** The tail of a very long log that the page shows; the whole log is at /api/v1/builds/<id>/log. */
export const LOG_CHARS_SHOWN = 1_000_000;

/** What the build page shows. */
export interface BuildData {
  build: Build;
  serviceTag: string | null;
  image: PublishedImage | null;
  notice?: string;
  error?: string;
  /** The build waits and no builder is running: why it will not start (core/builder-presence.ts). */
  noBuilder?: string;
}

/** One build: status, error first when it failed, the log (streamed while it runs), its files. */
export const BuildPage: FC<{ data: BuildData; page: PageContext }> = ({ data, page }) => {
  const b = data.build;
  const omitted = Math.max(0, b.log_output.length - LOG_CHARS_SHOWN);
  const running = !isBuildFinished(b.status as BuildStatus);
  return (
    <Layout title={`Build #${b.id}`} page={page} active="/machines">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/machines">Machines</a> /{' '}
        {data.serviceTag ? <a href={`/machines/${encodeURIComponent(machineRef(data.serviceTag))}`}>{b.hostname}</a> : <span>{b.hostname} (deleted)</span>} / build #{b.id}
      </nav>
      <div class="title-row">
        <h1>
          Build #{b.id} of {b.hostname}
        </h1>
        <span id="build-status">
          <StatusBadge status={b.status} live />
        </span>
        {running && may(page, 'operator') && (
          <form method="post" action={`/builds/${b.id}/cancel`} class="inline">
            <CsrfField page={page} />
            <button type="submit" class="danger">
              Cancel build
            </button>
          </form>
        )}
      </div>
      {data.error && <Alert kind="error">{data.error}</Alert>}
      {data.notice && <Alert kind="notice">{data.notice}</Alert>}
      {data.noBuilder && <Alert kind="warning">{data.noBuilder}</Alert>}
      {b.error && (
        <div class="alert alert-error build-error" role="alert">
          <strong>Build {b.status}:</strong> <span class="pre-wrap">{b.error}</span>
        </div>
      )}
      <section class="card">
        <dl class="facts">
          <Fact label="Requested">
            <When iso={b.created_at} now={page.now} />
          </Fact>
          <Fact label="Started">{formatTimestamp(b.started_at)}</Fact>
          <Fact label="Finished">{formatTimestamp(b.completed_at)}</Fact>
          <Fact label="Duration">
            <span id="build-duration">{formatDuration(b.started_at, b.completed_at, page.now)}</span>
          </Fact>
          <Fact label="Attempts">{String(b.attempts)}</Fact>
          <Fact label="nixpkgs">
            <NixpkgsFacts build={b} />
          </Fact>
          {b.boot_check_seconds !== null && (
            <Fact label="Boot check">
              <span class="boot-check" title="METAL_BUILD_BOOT_CHECK: the image reported booted in the builder's VM before any machine got it">{`booted in a VM in ${b.boot_check_seconds} s`}</span>
            </Fact>
          )}
        </dl>
      </section>
      <section class="card" aria-labelledby="log">
        <h2 id="log">Log</h2>
        {omitted > 0 && (
          <p class="muted">
            The first {omitted.toLocaleString('en-US')} characters are left out here; the whole log is at{' '}
            <a href={`/api/v1/builds/${b.id}/log`}>{`/api/v1/builds/${b.id}/log`}</a>.
          </p>
        )}
        <pre
          id="build-log"
          class="log"
          tabindex={0}
          aria-label="Build log"
          data-stream={running ? `/builds/${b.id}/stream?offset=${b.log_output.length}` : undefined}
        >
          {omitted > 0 ? b.log_output.slice(omitted) : b.log_output}
        </pre>
        {running && (
          <p class="muted" id="log-state">
            Streaming while the build runs…
          </p>
        )}
      </section>
      {data.image && (
        <section class="card" aria-labelledby="files">
          <h2 id="files">Published files</h2>
          <dl class="facts">
            <Fact label="init">
              <span class="mono">{data.image.init ?? '—'}</span>
            </Fact>
            <Fact label="Kernel parameters">
              <span class="mono">{data.image.kernelParams.join(' ') || '—'}</span>
            </Fact>
            {data.image.secureBoot && (
              <Fact label="Secure Boot">
                <span class="secure-boot" title={`certificate SHA-256 ${data.image.secureBoot.certSha256}`}>
                  kernel signed for {data.image.secureBoot.subject}
                </span>
              </Fact>
            )}
          </dl>
          <div class="table-scroll">
            <table class="compact">
              <TableHead columns={['File', 'Size', 'SHA-256']} />
              <tbody>
                {data.image.files.map((f) => (
                  <tr>
                    <td>
                      <a href={f.url}>{f.name}</a>
                    </td>
                    <td class="num">{formatDecimalBytes(f.size)}</td>
                    <td class="mono hash">{f.sha256 ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
      <section class="card" aria-labelledby="config">
        <details>
          <summary id="config">Configuration this build used ({String(Object.keys(configFilesOf(b)).length)} {Object.keys(configFilesOf(b)).length === 1 ? 'file' : 'files'})</summary>
          {Object.entries(configFilesOf(b)).map(([name, text]) => (
            <>
              <h3 class="mono file-name">{name}</h3>
              <pre class="raw" data-nix={name.endsWith('.nix') ? true : undefined}>
                {text}
              </pre>
            </>
          ))}
        </details>
      </section>
    </Layout>
  );
};
