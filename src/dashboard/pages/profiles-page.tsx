import type { FC } from 'hono/jsx';
import type { Profile } from '../../core/profile.ts';
import type { Machine } from '../../core/types.ts';
import { machineRef } from '../../core/machine-service.ts';
import { Alert, CsrfField, DangerButtonForm, Layout, may, type PageContext, StatusBadge, TableHead } from '../components.tsx';

/** What the profile form shows (as typed, when a save was refused). */
export interface ProfileForm {
  name: string;
  description: string;
  hostname_pattern: string;
  kernel_params: string;
  auto_build: boolean;
  health_check: string;
  skip_boot_check: boolean;
  nixos_config: string;
}

export const EMPTY_PROFILE_FORM: ProfileForm = { name: '', description: '', hostname_pattern: '', kernel_params: '', auto_build: false, health_check: '', skip_boot_check: false, nixos_config: '{ ... }:\n{\n}\n' };

export function profileForm(p: Profile): ProfileForm {
  return {
    name: p.name,
    description: p.description ?? '',
    hostname_pattern: p.hostname_pattern ?? '',
    kernel_params: p.kernel_params.join(' '),
    auto_build: p.auto_build,
    health_check: p.health_check ?? '',
    skip_boot_check: p.skip_boot_check,
    nixos_config: p.nixos_config,
  };
}

/** The fields of a profile, for creating (with a name) or editing one. */
const ProfileFields: FC<{ form: ProfileForm; page: PageContext; creating: boolean }> = ({ form, page, creating }) => (
  <>
    <CsrfField page={page} />
    {creating && (
      <>
        <label for="profile-name">Name (a DNS label, e.g. web)</label>
        <input id="profile-name" name="name" required maxlength={63} pattern="[a-z0-9]([a-z0-9\-]*[a-z0-9])?" value={form.name} />
      </>
    )}
    <label for="profile-description">Description</label>
    <input id="profile-description" name="description" maxlength={4096} value={form.description} />
    <label for="profile-pattern">Hostname pattern ({'{n}'}, {'{n:03}'}, {'{tag}'}, {'{label.KEY}'}; machines without a hostname are named from it)</label>
    <input id="profile-pattern" name="hostname_pattern" maxlength={128} value={form.hostname_pattern} placeholder="web-{n:03}" class="mono" />
    <label for="profile-params">Kernel parameters (space-separated)</label>
    <input id="profile-params" name="kernel_params" maxlength={4096} value={form.kernel_params} placeholder="console=ttyS1,115200" class="mono" />
    <label for="profile-health">Health check (a command its images run once up; a rollout counts a failure as unhealthy)</label>
    <input id="profile-health" name="health_check" maxlength={1024} value={form.health_check} placeholder="systemctl is-active nginx" class="mono" />
    <label>
      <input type="checkbox" name="auto_build" value="yes" checked={form.auto_build} /> Build machines as soon as a rule gives them this profile
    </label>
    <label>
      <input type="checkbox" name="skip_boot_check" value="yes" checked={form.skip_boot_check} /> Skip the boot check in a VM for its machines’ builds (a configuration that cannot come up there, e.g. every NIC with a fixed address)
    </label>
    <label for="profile-config">NixOS module (imported before each machine’s own)</label>
    <textarea id="profile-config" name="nixos_config" rows={14} spellcheck={false} class="code">
      {form.nixos_config}
    </textarea>
  </>
);

/** /profiles: every profile with its machines and how many are out of date, and a form for a new one. */
export const ProfilesPage: FC<{ profiles: Profile[]; page: PageContext; error?: string; notice?: string; form?: ProfileForm }> = ({ profiles, page, error, notice, form }) => (
  <Layout title="Profiles" page={page} active="/profiles">
    <h1>Profiles</h1>
    {error && <Alert kind="error">{error}</Alert>}
    {notice && <Alert kind="notice">{notice}</Alert>}
    <p class="muted">A profile is a NixOS module many machines share: each machine’s build imports it, then the machine’s own module. See docs/fleet.md.</p>
    <section class="card">
      {profiles.length === 0 ? (
        <p class="muted">No profiles yet.</p>
      ) : (
        <table class="compact">
          <TableHead columns={['Name', 'Machines', 'Out of date', 'Hostname pattern', 'Description']} />
          <tbody>
            {profiles.map((p) => (
              <tr>
                <td>
                  <a href={`/profiles/${encodeURIComponent(p.name)}`} class="mono">
                    {p.name}
                  </a>
                </td>
                <td class="num">{p.machines ?? 0}</td>
                <td class="num">{p.out_of_date ?? 0}</td>
                <td class="mono">{p.hostname_pattern ?? '—'}</td>
                <td class="clip">{p.description ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
    {may(page, 'operator') && (
      <section class="card" aria-labelledby="new-profile">
        <h2 id="new-profile">New profile</h2>
        <form method="post" action="/profiles" class="stacked">
          <ProfileFields form={form ?? EMPTY_PROFILE_FORM} page={page} creating={true} />
          <div class="actions">
            <button type="submit" class="primary">
              Create profile
            </button>
          </div>
        </form>
      </section>
    )}
  </Layout>
);

/** /profiles/{name}: the editor, the machines using it, and "rebuild them" for those out of date. */
export const ProfilePage: FC<{ profile: Profile; machines: Machine[]; page: PageContext; error?: string; notice?: string; form?: ProfileForm }> = ({
  profile,
  machines,
  page,
  error,
  notice,
  form,
}) => {
  const stale = machines.filter((m) => m.out_of_date).length;
  const path = `/profiles/${encodeURIComponent(profile.name)}`;
  return (
    <Layout title={`Profile ${profile.name}`} page={page} active="/profiles">
      <h1>
        Profile <span class="mono">{profile.name}</span>
      </h1>
      {error && <Alert kind="error">{error}</Alert>}
      {notice && <Alert kind="notice">{notice}</Alert>}
      <section class="card" aria-labelledby="profile-machines">
        <h2 id="profile-machines">
          Machines using it: {profile.machines ?? machines.length}, out of date: <span data-out-of-date={String(stale)}>{stale}</span>
        </h2>
        {stale > 0 && may(page, 'operator') && (
          <form method="post" action={`${path}/rebuild`} class="inline">
            <CsrfField page={page} />
            <button type="submit" class="primary">
              Rebuild them ({stale})
            </button>
          </form>
        )}
        {machines.length > 0 && (
          <table class="compact">
            <TableHead columns={['Hostname', 'Service tag', 'Status', 'Up to date']} />
            <tbody>
              {machines.map((m) => (
                <tr>
                  <td>
                    <a href={`/machines/${encodeURIComponent(machineRef(m.service_tag))}`}>{m.hostname ?? '(not set)'}</a>
                  </td>
                  <td class="mono">{m.service_tag}</td>
                  <td>
                    <StatusBadge status={m.status} />
                  </td>
                  <td>{m.out_of_date ? <span class="badge badge-configured" title="its configuration changed since its image was built">out of date</span> : 'yes'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      {may(page, 'operator') ? (
        <section class="card" aria-labelledby="edit-profile">
          <h2 id="edit-profile">Edit</h2>
          <form method="post" action={path} class="stacked">
            <ProfileFields form={form ?? profileForm(profile)} page={page} creating={false} />
            <div class="actions">
              <button type="submit" class="primary">
                Save
              </button>
            </div>
          </form>
          <DangerButtonForm page={page} action={`${path}/delete`} label="Delete profile" />
        </section>
      ) : (
        <section class="card">
          <pre class="code">{profile.nixos_config}</pre>
        </section>
      )}
    </Layout>
  );
};
