import type { FC } from 'hono/jsx';
import { Alert, Layout } from '../components.tsx';

/** The sign-in form; `next` is where to go afterwards (a local path, checked by the caller). */
export const LoginPage: FC<{ next: string; username?: string; error?: string; notice?: string }> = ({ next, username, error, notice }) => (
  <Layout title="Sign in" page={null}>
    <section class="card login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      {error && <Alert kind="error">{error}</Alert>}
      {notice && <Alert kind="notice">{notice}</Alert>}
      <form method="post" action="/login" class="stacked">
        <input type="hidden" name="next" value={next} />
        <label for="username">Username</label>
        <input id="username" name="username" value={username ?? ''} autocomplete="username" required autofocus={!username} maxlength={64} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required autofocus={Boolean(username)} maxlength={1024} />
        <div class="actions">
          <button type="submit" class="primary">
            Sign in
          </button>
        </div>
      </form>
      <p class="muted small">
        The first administrator is <span class="mono">admin</span>; its password is <span class="mono">METAL_ADMIN_PASSWORD</span>, or the
        one written to <span class="mono">initial-admin-password</span> in the data directory on first start.
      </p>
    </section>
  </Layout>
);

/** A page for a refused or failed request, in the dashboard's frame. */
export const ErrorPage: FC<{ status: number; message: string; signedIn: boolean }> = ({ status, message, signedIn }) => (
  <Layout title={`Error ${status}`} page={null}>
    <section class="card">
      <h1>{status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : status >= 500 ? 'Something went wrong' : 'Request refused'}</h1>
      <Alert kind="error">{message}</Alert>
      <p>
        <a href="/">Back to the overview</a>
        {!signedIn && (
          <>
            {' '}
            · <a href="/login">Sign in</a>
          </>
        )}
      </p>
    </section>
  </Layout>
);
