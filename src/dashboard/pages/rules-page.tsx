import type { FC } from 'hono/jsx';
import type { Profile } from '../../core/profile.ts';
import { describeRuleMatch, describeRuleSet, type Rule } from '../../core/rule.ts';
import type { RuleEffect } from '../../core/rule-service.ts';
import { Alert, CsrfField, DangerButtonForm, Layout, may, type PageContext, TableHead } from '../components.tsx';

/** The rule form as typed. */
export interface RuleForm {
  name: string;
  priority: string;
  manufacturer: string;
  model: string;
  service_tag: string;
  mac: string;
  switch: string;
  switch_port: string;
  labels_selector: string;
  gpu: '' | 'yes' | 'no';
  profile: string;
  set_labels: string;
  hostname_pattern: string;
  build: boolean;
}

export const EMPTY_RULE_FORM: RuleForm = { name: '', priority: '100', manufacturer: '', model: '', service_tag: '', mac: '', switch: '', switch_port: '', labels_selector: '', gpu: '', profile: '', set_labels: '', hostname_pattern: '', build: false };

const text = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));

type RulePreviewProps = { preview?: { matched: number; items: RuleEffect[] }; error?: string };

/** The preview of what the rule being typed would do today. */
export const RulePreview: FC<RulePreviewProps> = (props) => (
  // The preview asks for itself again as the form is typed in. It is the element that sends, with the
  // form's fields included, so the form's own validation (a name is required to create a rule, not to
  // preview one) does not hold the request back, as it would were the form the sender. Only its content
  // is swapped: the element stays, and with it what was typed while a preview was on its way (htmx
  // queues that request on the element; replacing the element would drop it, and the preview would
  // show the form as it was a keystroke before).
  <div id="rule-preview" aria-live="polite" hx-post="/rules/preview" hx-include="#rule-form" hx-trigger="input from:#rule-form delay:400ms, change from:#rule-form" hx-swap="innerHTML">
    <RulePreviewContent {...props} />
  </div>
);

/** What /rules/preview answers: the inside of #rule-preview. */
export const RulePreviewContent: FC<RulePreviewProps> = ({ preview, error }) => (
  <>
    {error ? (
      <p class="alert alert-error">{error}</p>
    ) : preview === undefined ? (
      <p class="muted">Fill in the rule to see which machines it matches today.</p>
    ) : preview.matched === 0 ? (
      <p>
        It matches <strong data-matched="0">0</strong> machines today.
      </p>
    ) : (
      <>
        <p>
          It matches <strong data-matched={String(preview.matched)}>{preview.matched}</strong> machines today (nothing is changed by a preview):
        </p>
        <table class="compact">
          <TableHead columns={['Service tag', 'Would change', 'Hostname', 'Profile']} />
          <tbody>
            {preview.items.slice(0, 50).map((i) => (
              <tr>
                <td class="mono">{i.service_tag}</td>
                <td>{i.error ? i.error.message : i.changes.join(', ') || 'nothing'}</td>
                <td class="mono">{i.hostname ?? '—'}</td>
                <td class="mono">{i.profile ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {preview.matched > 50 && <p class="muted">The first 50 are shown, by id.</p>}
      </>
    )}
  </>
);

/** /rules: the rules in order, a form for a new one with a live preview, and re-apply. */
export const RulesPage: FC<{ rules: Rule[]; profiles: Profile[]; page: PageContext; error?: string; notice?: string; form?: RuleForm }> = ({ rules, profiles, page, error, notice, form }) => {
  const f = form ?? EMPTY_RULE_FORM;
  return (
    <Layout title="Rules" page={page} active="/rules">
      <h1>Rules</h1>
      {error && <Alert kind="error">{error}</Alert>}
      {notice && <Alert kind="notice">{notice}</Alert>}
      <p class="muted">On a machine’s first enrollment the first matching enabled rule (lowest priority first) gives it a profile, labels and a hostname, and may build it.</p>
      <section class="card">
        {rules.length === 0 ? (
          <p class="muted">No rules yet.</p>
        ) : (
          <table class="compact">
            <TableHead columns={['Priority', 'Name', 'Match', 'Set', 'Build', 'Enabled']} actions />
            <tbody>
              {rules.map((r) => (
                <tr>
                  <td class="num">{r.priority}</td>
                  <td class="mono">{r.name}</td>
                  <td class="clip" title={text(r.match)}>{describeRuleMatch(r.match)}</td>
                  <td class="clip" title={text(r.set)}>{describeRuleSet(r.set)}</td>
                  <td>{r.build ? 'yes' : 'no'}</td>
                  <td>{r.enabled ? 'yes' : 'no'}</td>
                  <td>
                    {may(page, 'operator') && (
                      <DangerButtonForm page={page} action={`/rules/${r.id}/delete`} label="Delete" ariaLabel={`Delete rule ${r.name}`} />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      {may(page, 'operator') && (
        <section class="card" aria-labelledby="new-rule">
          <h2 id="new-rule">New rule</h2>
          <form id="rule-form" method="post" action="/rules" class="stacked narrow rule-form">
            <CsrfField page={page} />
            <label for="rule-name">Name</label>
            <input id="rule-name" name="name" required maxlength={63} value={f.name} />
            <label for="rule-priority">Priority (lower first)</label>
            <input id="rule-priority" name="priority" type="number" min={0} max={1000000} value={f.priority} />
            <fieldset>
              <legend>Match</legend>
              <p class="muted">Every field given must hold; globs with * and ?.</p>
              <label for="m-manufacturer">Manufacturer</label>
              <input id="m-manufacturer" name="manufacturer" maxlength={128} value={f.manufacturer} placeholder="Dell*" />
              <label for="m-model">Model</label>
              <input id="m-model" name="model" maxlength={128} value={f.model} />
              <label for="m-tag">Service tag</label>
              <input id="m-tag" name="service_tag" maxlength={128} value={f.service_tag} />
              <label for="m-mac">MAC prefix</label>
              <input id="m-mac" name="mac" maxlength={17} value={f.mac} placeholder="3c:ec:ef" />
              <label for="m-switch">Switch (LLDP name a NIC is cabled to)</label>
              <input id="m-switch" name="switch" maxlength={128} value={f.switch} placeholder="leaf-r12-*" />
              <label for="m-switch-port">Switch port</label>
              <input id="m-switch-port" name="switch_port" maxlength={128} value={f.switch_port} placeholder="Ethernet1?" />
              <label for="m-labels">Labels (selector)</label>
              <input id="m-labels" name="labels_selector" maxlength={1024} value={f.labels_selector} />
              <label for="m-gpu">GPU</label>
              <select id="m-gpu" name="gpu">
                <option value="" selected={f.gpu === ''}>
                  any
                </option>
                <option value="yes" selected={f.gpu === 'yes'}>
                  has a GPU
                </option>
                <option value="no" selected={f.gpu === 'no'}>
                  no GPU
                </option>
              </select>
            </fieldset>
            <fieldset>
              <legend>Set</legend>
              <label for="s-profile">Profile</label>
              <select id="s-profile" name="profile">
                <option value="">(none)</option>
                {profiles.map((p) => (
                  <option value={p.name} selected={f.profile === p.name}>
                    {p.name}
                  </option>
                ))}
              </select>
              <label for="s-labels">Labels (key=value, comma-separated)</label>
              <input id="s-labels" name="set_labels" maxlength={4096} value={f.set_labels} placeholder="role=web,env=prod" />
              <label for="s-pattern">Hostname pattern</label>
              <input id="s-pattern" name="hostname_pattern" maxlength={128} value={f.hostname_pattern} placeholder="web-{n:03}" />
            </fieldset>
            <label>
              <input type="checkbox" name="build" value="yes" checked={f.build} /> Build once applied
            </label>
            <div class="actions">
              <button type="submit" class="primary">
                Create rule
              </button>
            </div>
          </form>
          <h3>Preview</h3>
          <RulePreview />
        </section>
      )}
    </Layout>
  );
};
