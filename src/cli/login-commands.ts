import type { Command } from 'commander';
import { ApiClient, ApiError, CliError } from './client/api-client.ts';
import { clientFromEnvironment, readSettings, settingsPath, writeSettings } from './client/client-settings.ts';
import { printJson, withExamples } from './client/output.ts';
import { printable } from './client/table.ts';
import { promptSecret, readSecretFromStdin, readStdin } from './client/terminal-input.ts';

interface LoginResponse {
  token: string;
  expires_at: string | null;
}

interface Me {
  username: string;
  role: string;
  kind: string;
}

/** `metal login`, `metal logout`, `metal passwd` and `metal whoami`. */
export function registerLoginCommands(program: Command): void {
  withExamples(
    program
      .command('login')
      .description('sign in to a server and remember it (in $XDG_CONFIG_HOME/metal/config.json, mode 0600)')
      .option('--url <url>', 'the API, e.g. http://metal.example:8080 (default: METAL_URL or the last one used)')
      .option('-u, --user <name>', 'user name (default: the last one used)')
      .option('--password-stdin', 'read the password from standard input instead of asking'),
    'metal login --url http://metal.example:8080 --user alice',
    'printf %s "$METAL_PASSWORD" | metal login --url http://127.0.0.1:8080 --user admin --password-stdin',
  ).action(async (opts: { url?: string; user?: string; passwordStdin?: boolean }) => {
    const saved = readSettings();
    const url = opts.url ?? process.env.METAL_URL ?? saved.url;
    if (!url) throw new CliError('which server? give --url, e.g. metal login --url http://metal.example:8080 --user admin');
    const username = opts.user ?? saved.username;
    if (!username) throw new CliError('which user? give --user NAME');
    const client = new ApiClient({ url });
    const password = opts.passwordStdin ? await readSecretFromStdin() : await promptSecret(`password for ${username} at ${client.url}: `);
    let session: LoginResponse;
    try {
      session = await client.post<LoginResponse>('/api/v1/auth/login', { username, password });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw new CliError(`login failed: ${err.apiMessage}`);
      throw err;
    }
    const path = writeSettings({ url: client.url, token: session.token, username, ...(session.expires_at ? { expires_at: session.expires_at } : {}) });
    process.stderr.write(`logged in to ${client.url} as ${printable(username)}${session.expires_at ? ` until ${session.expires_at}` : ''} (saved in ${path})\n`);
    if (process.env.METAL_TOKEN) process.stderr.write('note: METAL_TOKEN is set and takes precedence over the saved token\n');
  });

  withExamples(program.command('logout').description('end the saved session and forget its token'), 'metal logout').action(async () => {
    const saved = readSettings();
    if (!saved.token) {
      process.stderr.write('not logged in\n');
      return;
    }
    if (saved.url) {
      try {
        await new ApiClient({ url: saved.url, token: saved.token }).post('/api/v1/auth/logout');
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) process.stderr.write(`metal: the server was not told (${(err as Error).message}); the token is forgotten anyway\n`);
      }
    }
    const { token: _token, expires_at: _expires, ...rest } = saved;
    writeSettings(rest);
    process.stderr.write(`logged out${saved.url ? ` of ${saved.url}` : ''}; the token is removed from ${settingsPath()}\n`);
  });

  withExamples(
    program
      .command('passwd')
      .description('change your own password; your other sessions end, and your API tokens are revoked unless --keep-tokens')
      .option('--password-stdin', 'read the current password and then the new one, a line each, from standard input')
      .option('--keep-tokens', 'keep your other API tokens'),
    'metal passwd',
    'printf "%s\\n%s\\n" "$OLD" "$NEW" | metal passwd --password-stdin',
  ).action(async (opts: { passwordStdin?: boolean; keepTokens?: boolean }) => {
    const client = clientFromEnvironment();
    let current: string;
    let next: string;
    if (opts.passwordStdin) {
      const [first = '', second = ''] = (await readStdin(64 * 1024)).split(/\r?\n/);
      if (!first || !second) throw new CliError('give the current password and the new one on standard input, a line each');
      [current, next] = [first, second];
    } else {
      current = await promptSecret('current password: ');
      next = await promptSecret('new password: ');
      if ((await promptSecret('again: ')) !== next) throw new CliError('the new passwords differ; nothing was changed');
    }
    await client.put('/api/v1/auth/password', { current_password: current, new_password: next, ...(opts.keepTokens ? { keep_tokens: true } : {}) });
    process.stderr.write(`metal: password changed${opts.keepTokens ? '' : '; your other sessions and API tokens no longer work'}\n`);
  });

  withExamples(program.command('whoami').description('who the saved session or METAL_TOKEN signs in as').option('--json', 'print the API response as JSON'), 'metal whoami').action(
    async (opts: { json?: boolean }) => {
      const client = clientFromEnvironment();
      const me = await client.get<Me>('/api/v1/auth/me');
      if (opts.json) return printJson(me);
      process.stdout.write(`${printable(me.username)} (${printable(me.role)}, ${printable(me.kind)}) at ${client.url}\n`);
    },
  );
}
