import type { Command } from 'commander';
import type { AuthService } from '../../auth/auth-service.ts';
import { generatePassword } from '../../auth/opaque-token.ts';
import { DomainError } from '../../core/errors.ts';
import { SYSTEM_ACTOR } from '../../core/types.ts';
import { configFromFlags, withConfigFlags } from '../../config/config-flags.ts';

/** The first line of standard input, without its line ending. */
async function readPasswordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** Opens the database named by the settings (migrating it), runs `fn` with the user service, closes. */
async function withAuth(opts: Record<string, unknown>, fn: (auth: AuthService) => Promise<void>): Promise<void> {
  const config = configFromFlags(opts);
  // Loaded here so that client commands don't pay for the database drivers.
  const { AuthService } = await import('../../auth/auth-service.ts');
  const { loadSecretKey } = await import('../../auth/secret-key.ts');
  const { createLogger } = await import('../../core/logger.ts');
  const { migrate } = await import('../../storage/database.ts');
  const { openConfiguredDatabase } = await import('../configured-database.ts');
  const { SqlStorage } = await import('../../storage/storage.ts');
  const database = await openConfiguredDatabase(config);
  try {
    await migrate(database);
    await fn(new AuthService(new SqlStorage(database), createLogger('silent'), loadSecretKey(config)));
  } catch (err) {
    if (err instanceof DomainError) {
      console.error(`metal: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  } finally {
    await database.close();
  }
}

/** `metal user add|passwd|rm|ls`: manage accounts on the server, straight in the database. */
export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('manage user accounts on the server (opens the database directly)');

  withConfigFlags(
    user
      .command('add <name>')
      .description('create a user; prints a random password unless --password-stdin')
      .requiredOption('--role <role>', 'admin, operator or viewer')
      .option('--password-stdin', 'read the password from the first line of standard input')
      .addHelpText('after', '\nExamples:\n  metal user add alice --role operator\n  printf "%s\\n" "$PW" | metal user add ci --role viewer --password-stdin'),
  ).action(async (name: string, opts: Record<string, unknown>) => {
    const password = opts.passwordStdin ? await readPasswordFromStdin() : generatePassword();
    await withAuth(opts, async (auth) => {
      const created = await auth.users.create({ username: name, role: String(opts.role), password }, SYSTEM_ACTOR);
      console.log(`created ${created.username} (${created.role})`);
      if (!opts.passwordStdin) console.log(`password: ${password}`);
    });
  });

  withConfigFlags(
    user
      .command('passwd <name>')
      .description("set a user's password (random unless --password-stdin); ends their sessions and revokes their API tokens")
      .option('--password-stdin', 'read the password from the first line of standard input')
      .option('--keep-tokens', "keep the user's API tokens working")
      .addHelpText('after', '\nExample:\n  metal user passwd admin'),
  ).action(async (name: string, opts: Record<string, unknown>) => {
    const password = opts.passwordStdin ? await readPasswordFromStdin() : generatePassword();
    await withAuth(opts, async (auth) => {
      const updated = await auth.users.update(name, { password, ...(opts.keepTokens ? { keep_tokens: true } : {}) }, SYSTEM_ACTOR);
      console.log(`password of ${updated.username} changed`);
      if (!opts.passwordStdin) console.log(`password: ${password}`);
    });
  });

  withConfigFlags(
    user.command('rm <name>').description('remove a user with their sessions and API tokens').addHelpText('after', '\nExample:\n  metal user rm alice'),
  ).action(async (name: string, opts: Record<string, unknown>) => {
    await withAuth(opts, async (auth) => {
      await auth.users.remove(name, SYSTEM_ACTOR);
      console.log(`removed ${name}`);
    });
  });

  withConfigFlags(user.command('ls').description('list users').addHelpText('after', '\nExample:\n  metal user ls')).action(async (opts: Record<string, unknown>) => {
    await withAuth(opts, async (auth) => {
      const { items } = await auth.users.list(500, 0);
      for (const u of items) console.log(`${u.username}\t${u.role}${u.disabled ? '\tdisabled' : ''}`);
    });
  });
}
