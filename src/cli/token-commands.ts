import { InvalidArgumentError, Option, type Command } from 'commander';
import { ROLES } from '../core/types.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';

/** An API token as the API lists it (the secret itself is only in the create response). */
interface ApiToken {
  id: number;
  name: string;
  role: string;
  owner: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

function days(value: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(value)) throw new InvalidArgumentError(`--expires must be a number of days (1-99999), not ${JSON.stringify(value)}`);
  return Number(value);
}

const short = (time: string | null) => (time ? time.replace(/\.\d+Z$/, 'Z') : '-');

/** `metal tokens create|ls|rm`: API tokens for scripts and CI. */
export function registerTokenCommands(program: Command): void {
  const tokens = withExamples(
    program.command('tokens').description('API tokens for scripts and CI (METAL_TOKEN=…)'),
    'metal tokens create ci --role operator --expires 90',
    'metal tokens ls',
  );

  withExamples(
    tokens
      .command('create')
      .description('create a token; it is printed once and cannot be shown again')
      .argument('<name>', 'a name for it, e.g. ci')
      .addOption(new Option('--role <role>', 'its role (at most yours; default: yours)').choices(ROLES))
      .option('--expires <days>', 'expire after this many days (default: never)', days)
      .option('--json', 'print the API response (with the token) as JSON'),
    'metal tokens create ci --role operator --expires 90',
    'export METAL_TOKEN=$(metal tokens create deploy --role viewer --json | jq -r .token)',
  ).action(async (name: string, opts: { role?: string; expires?: number; json?: boolean }) => {
    const body: Record<string, string> = { name };
    if (opts.role) body.role = opts.role;
    if (opts.expires) body.expires_at = new Date(Date.now() + opts.expires * 86_400_000).toISOString();
    const created = await clientFromEnvironment().post<ApiToken & { token: string }>('/api/v1/tokens', body);
    if (opts.json) return printJson(created);
    process.stderr.write(
      `token ${created.id} "${printable(created.name)}" (${created.role}${created.expires_at ? `, expires ${short(created.expires_at)}` : ', no expiry'}); it is shown only now:\n`,
    );
    process.stdout.write(`${created.token}\n`);
  });

  withExamples(tokens.command('ls').description('list tokens (an admin sees everyone’s)').option('--json', 'print the API response as JSON'), 'metal tokens ls').action(
    async (opts: { json?: boolean }) => {
      const list = await clientFromEnvironment().get<{ items: ApiToken[]; total: number }>('/api/v1/tokens', { query: { limit: 500 } });
      if (opts.json) return printJson(list);
      if (list.items.length === 0) return void process.stderr.write('no tokens\n');
      printLines(
        formatTable(
          ['ID', 'NAME', 'OWNER', 'ROLE', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED'],
          list.items.map((t) => [String(t.id), printable(t.name), printable(t.owner), t.role, short(t.created_at), short(t.expires_at), short(t.last_used_at), short(t.revoked_at)]),
        ),
      );
    },
  );

  withExamples(tokens.command('rm').description('revoke a token').argument('<id>', 'token id (see metal tokens ls)', positiveInteger('token id')), 'metal tokens rm 3').action(
    async (id: number) => {
      await clientFromEnvironment().delete(`/api/v1/tokens/${id}`);
      process.stdout.write(`token ${id} revoked\n`);
    },
  );
}
