import type { Command } from 'commander';
import { configFromFlags, withConfigFlags } from '../../config/config-flags.ts';

/** Longest a health check may take before it counts as failed. */
const CHECK_TIMEOUT_MS = 5000;

/**
 * `metal healthcheck`: exit 0 when the configured database answers `select 1` within 5 s, else 1 with
 * the reason. For probes of roles without a listener (the builder) and for install scripts.
 */
export function registerHealthcheckCommand(program: Command): void {
  withConfigFlags(
    program
      .command('healthcheck')
      .description('check that the configured database answers (exit 0) or say why not (exit 1)')
      .addHelpText('after', '\nExample:\n  METAL_DATABASE_URL=postgres://metal@db/metal metal healthcheck'),
  ).action(async (opts: Record<string, string | undefined>) => {
    const config = configFromFlags(opts);
    const { openConfiguredDatabase } = await import('../configured-database.ts');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
    });
    try {
      // Opened and asked once, as at start-up; the message names METAL_DATABASE_URL.
      const database = await Promise.race([openConfiguredDatabase(config), timeout]);
      await database.close().catch(() => undefined);
      console.log('healthcheck: the database answers');
    } catch (err) {
      console.error(`healthcheck: the database does not answer: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    } finally {
      clearTimeout(timer);
    }
  });
}
