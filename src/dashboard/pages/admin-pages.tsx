import type { FC } from 'hono/jsx';
import { ROLES, type ApiToken, type User } from '../../core/types.ts';
import { Alert, CsrfField, DangerButtonForm, Layout, type PageContext, TableHead, When } from '../components.tsx';

const RoleSelect: FC<{ id: string; selected?: string }> = ({ id, selected }) => (
  <select id={id} name="role">
    {ROLES.map((r) => (
      <option value={r} selected={r === (selected ?? 'viewer')}>
        {r}
      </option>
    ))}
  </select>
);

/** Users: who may sign in, with which role; create and remove. */
export const UsersPage: FC<{ users: User[]; page: PageContext; error?: string; notice?: string }> = ({ users, page, error, notice }) => (
  <Layout title="Users" page={page} active="/admin/users">
    <h1>Users</h1>
    {error && <Alert kind="error">{error}</Alert>}
    {notice && <Alert kind="notice">{notice}</Alert>}
    <section class="card">
      <table class="compact">
        <TableHead columns={['Username', 'Role', 'State', 'Created']} actions />
        <tbody>
          {users.map((u) => (
            <tr>
              <td>{u.username}</td>
              <td>{u.role}</td>
              <td>{u.disabled ? 'disabled' : 'active'}</td>
              <td>
                <When iso={u.created_at} now={page.now} />
              </td>
              <td>
                {u.id !== page.actor.id && (
                  <DangerButtonForm page={page} action={`/admin/users/${u.id}/delete`} label="Remove" ariaLabel={`Remove user ${u.username}`} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
    <section class="card" aria-labelledby="new-user">
      <h2 id="new-user">Add a user</h2>
      <form method="post" action="/admin/users" class="stacked narrow">
        <CsrfField page={page} />
        <label for="new-username">Username</label>
        <input id="new-username" name="username" required maxlength={64} autocomplete="off" />
        <label for="new-role">Role</label>
        <RoleSelect id="new-role" />
        <label for="new-password">Password (at least 8 characters)</label>
        <input id="new-password" name="password" type="password" required minlength={8} autocomplete="new-password" />
        <div class="actions">
          <button type="submit" class="primary">
            Add user
          </button>
        </div>
      </form>
    </section>
  </Layout>
);

/** API tokens: list, create (the secret is shown once, here), revoke. */
export const TokensPage: FC<{ tokens: ApiToken[]; page: PageContext; created?: { name: string; token: string }; error?: string; notice?: string }> = ({
  tokens,
  page,
  created,
  error,
  notice,
}) => (
  <Layout title="API tokens" page={page} active="/admin/tokens">
    <h1>API tokens</h1>
    {error && <Alert kind="error">{error}</Alert>}
    {notice && <Alert kind="notice">{notice}</Alert>}
    {created && (
      <div class="alert alert-notice" role="status">
        <p>
          Token <strong>{created.name}</strong> created. Copy it now: it is not shown again.
        </p>
        <label for="created-token">Token</label>
        <input id="created-token" class="mono token-once" readonly value={created.token} data-select-on-focus />
      </div>
    )}
    <section class="card">
      {tokens.length === 0 ? (
        <p class="muted">No API tokens yet.</p>
      ) : (
        <table class="compact">
          <TableHead columns={['Name', 'Owner', 'Role', 'Created', 'Last used', 'Expires', 'State']} />
          <tbody>
            {tokens.map((t) => (
              <tr>
                <td>{t.name}</td>
                <td>{t.owner}</td>
                <td>{t.role}</td>
                <td>
                  <When iso={t.created_at} now={page.now} />
                </td>
                <td>
                  <When iso={t.last_used_at} now={page.now} />
                </td>
                <td>{t.expires_at ? t.expires_at.slice(0, 10) : 'never'}</td>
                <td>
                  {t.revoked_at ? (
                    'revoked'
                  ) : (
                    <DangerButtonForm page={page} action={`/admin/tokens/${t.id}/revoke`} label="Revoke" ariaLabel={`Revoke token ${t.name}`} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
    <section class="card" aria-labelledby="new-token">
      <h2 id="new-token">Create a token</h2>
      <form method="post" action="/admin/tokens" class="stacked narrow">
        <CsrfField page={page} />
        <label for="token-name">Name</label>
        <input id="token-name" name="name" required maxlength={64} pattern="[A-Za-z0-9][A-Za-z0-9._\-]*" autocomplete="off" />
        <label for="token-role">Role</label>
        <RoleSelect id="token-role" selected="operator" />
        <label for="token-expires">Expires (optional)</label>
        <input id="token-expires" name="expires_at" type="date" />
        <div class="actions">
          <button type="submit" class="primary">
            Create token
          </button>
        </div>
      </form>
    </section>
  </Layout>
);
