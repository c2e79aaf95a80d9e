import type { FC } from 'hono/jsx';
import type { Webhook, WebhookDelivery } from '../../core/ports.ts';
import { Alert, CsrfField, DangerButtonForm, Layout, type PageContext, TableHead, When } from '../components.tsx';

/** An endpoint with its latest deliveries. */
export interface WebhookView {
  webhook: Webhook;
  deliveries: WebhookDelivery[];
  total: number;
}

/** Webhooks: endpoints, their latest deliveries (attempts, status, next try), add, switch, remove, redeliver. */
export const WebhooksPage: FC<{ hooks: WebhookView[]; page: PageContext; error?: string; notice?: string; form?: { url: string; events: string } }> = ({
  hooks,
  page,
  error,
  notice,
  form,
}) => (
  <Layout title="Webhooks" page={page} active="/admin/webhooks">
    <h1>Webhooks</h1>
    {error && <Alert kind="error">{error}</Alert>}
    {notice && <Alert kind="notice">{notice}</Alert>}
    <p class="muted">
      Events are POSTed to each endpoint, signed with its secret (X-Metal-Signature), at least once and in order; see docs/observability.md.
    </p>
    {hooks.length === 0 && (
      <section class="card">
        <p class="muted">No webhooks yet.</p>
      </section>
    )}
    {hooks.map(({ webhook: w, deliveries, total }) => (
      <section class="card" aria-labelledby={`hook-${w.id}`}>
        <h2 id={`hook-${w.id}`}>
          <span class="mono">{w.url}</span>
        </h2>
        <p>
          Events: <span class="mono">{w.events.join(', ')}</span> · {w.enabled ? 'enabled' : 'disabled'}
          {w.disabled_reason && <> ({w.disabled_reason})</>}
          {w.failing_since && (
            <>
              {' '}
              · failing since <When iso={w.failing_since} now={page.now} />
            </>
          )}
        </p>
        <div class="actions">
          <form method="post" action={`/admin/webhooks/${w.id}/${w.enabled ? 'disable' : 'enable'}`} class="inline">
            <CsrfField page={page} />
            <button type="submit" class="small">
              {w.enabled ? 'Disable' : 'Enable'}
            </button>
          </form>
          <DangerButtonForm page={page} action={`/admin/webhooks/${w.id}/delete`} label="Remove" ariaLabel={`Remove webhook ${w.url}`} />
        </div>
        {deliveries.length === 0 ? (
          <p class="muted">No deliveries yet.</p>
        ) : (
          <table class="compact">
            <caption>
              Latest {deliveries.length} of {total} deliveries
            </caption>
            <TableHead columns={['Event', 'Status', 'Attempts', 'Last answer', 'Next try', 'Created']} actions />
            <tbody>
              {deliveries.map((d) => (
                <tr>
                  <td class="mono">{d.event_type}</td>
                  <td>{d.status}</td>
                  <td>{d.attempts}</td>
                  <td>{d.last_error ?? (d.last_status_code === null ? '-' : String(d.last_status_code))}</td>
                  <td>{d.next_attempt_at ? <When iso={d.next_attempt_at} now={page.now} /> : '-'}</td>
                  <td>
                    <When iso={d.created_at} now={page.now} />
                  </td>
                  <td>
                    <form method="post" action={`/admin/webhooks/${w.id}/deliveries/${d.id}/redeliver`} class="inline">
                      <CsrfField page={page} />
                      <button type="submit" class="small" aria-label={`Redeliver ${d.event_type} delivery ${d.id}`}>
                        Redeliver
                      </button>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    ))}
    <section class="card" aria-labelledby="new-webhook">
      <h2 id="new-webhook">Add a webhook</h2>
      <form method="post" action="/admin/webhooks" class="stacked narrow">
        <CsrfField page={page} />
        <label for="new-url">URL</label>
        <input id="new-url" name="url" type="url" required maxlength={2048} value={form?.url ?? ''} placeholder="https://hooks.example.com/metal" />
        <label for="new-events">Events (comma-separated: machine.enrolled, build.failed, build.*, or *)</label>
        <input id="new-events" name="events" required value={form?.events ?? 'machine.enrolled, build.succeeded, build.failed'} />
        <label for="new-secret">Secret (16 to 256 characters; the receiver verifies signatures with it)</label>
        <input id="new-secret" name="secret" type="password" required minlength={16} maxlength={256} autocomplete="off" />
        <div class="actions">
          <button type="submit" class="primary">
            Add webhook
          </button>
        </div>
      </form>
    </section>
  </Layout>
);
