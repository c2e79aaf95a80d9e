import { Option, type Command } from 'commander';
import { ROLES } from '../core/types.ts';
import { CliError, segment } from './client/api-client.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';
import { confirm, promptSecret, readSecretFromStdin } from './client/terminal-input.ts';

/** A user account as the API shows it (never with a password hash). */
interface User {
  id: number;
  username: string;
  role: string;
  disabled: boolean;
  created_at: string;
  updated_at: string;
}

async function newPassword(fromStdin: boolean | undefined, username: string): Promise<string> {
  if (fromStdin) return readSecretFromStdin();
  const first = await promptSecret(`password for ${username}: `);
  const again = await promptSecret('again: ');
  if (first !== again) throw new CliError('the passwords differ');
  return first;
}

/** `metal users ls|add|rm|set-role`: user accounts over the API (admins only). */
export function registerUsersCommands(program: Command): void {
  const users = withExamples(
    program.command('users').description('manage user accounts through the API (admin role)'),
    'metal users ls',
    'metal users add alice --role operator',
  );

  withExamples(users.command('ls').description('list users').option('--json', 'print the API response as JSON'), 'metal users ls').action(async (opts: { json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: User[]; total: number }>('/api/v1/users', { query: { limit: 500 } });
    if (opts.json) return printJson(list);
    printLines(
      formatTable(
        ['ID', 'USERNAME', 'ROLE', 'DISABLED', 'CREATED'],
        list.items.map((u) => [String(u.id), printable(u.username), u.role, u.disabled ? 'yes' : 'no', u.created_at.replace(/\.\d+Z$/, 'Z')]),
      ),
    );
  });

  withExamples(
    users
      .command('add')
      .description('create a user (the password is asked for, or read with --password-stdin)')
      .argument('<username>')
      .addOption(new Option('--role <role>', 'their role').choices(ROLES).makeOptionMandatory())
      .option('--password-stdin', 'read the password from standard input')
      .option('--json', 'print the created user as JSON'),
    'metal users add alice --role operator',
    'printf %s "$PW" | metal users add ci-bot --role viewer --password-stdin',
  ).action(async (username: string, opts: { role: string; passwordStdin?: boolean; json?: boolean }) => {
    const password = await newPassword(opts.passwordStdin, username);
    const user = await clientFromEnvironment().post<User>('/api/v1/users', { username, role: opts.role, password });
    if (opts.json) return printJson(user);
    process.stdout.write(`user ${printable(user.username)} created (${user.role})\n`);
  });

  withExamples(
    users.command('set-role').description('change a user’s role').argument('<username>').argument('<role>', ROLES.join(' | ')).option('--json', 'print the updated user as JSON'),
    'metal users set-role alice admin',
  ).action(async (username: string, role: string, opts: { json?: boolean }) => {
    if (!(ROLES as readonly string[]).includes(role)) throw new CliError(`role must be one of ${ROLES.join(', ')}`);
    const user = await clientFromEnvironment().put<User>(`/api/v1/users/${segment(username)}`, { role });
    if (opts.json) return printJson(user);
    process.stdout.write(`user ${printable(user.username)} is now ${user.role}\n`);
  });

  withExamples(users.command('rm').description('remove a user').argument('<username>').option('-y, --yes', 'do not ask for confirmation'), 'metal users rm alice --yes').action(
    async (username: string, opts: { yes?: boolean }) => {
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new CliError(`not removing ${printable(username)} without --yes (standard input is not a terminal to ask on)`);
        if (!(await confirm(`remove user ${printable(username)}?`))) throw new CliError('not removed');
      }
      await clientFromEnvironment().delete(`/api/v1/users/${segment(username)}`);
      process.stdout.write(`user ${printable(username)} removed\n`);
    },
  );
}
