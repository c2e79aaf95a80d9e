import type { Command } from 'commander';
import { configFromFlags, withConfigFlags } from '../../config/config-flags.ts';

// The server's modules (fastify, kysely, database drivers) load only when a server command runs, so
// client commands start fast.
type RoleName = 'api' | 'boot' | 'builder' | 'pxe';

async function runRoles(roles: RoleName[], opts: Record<string, string | undefined>): Promise<void> {
  const config = configFromFlags(opts);
  const { createLogger } = await import('../../core/logger.ts');
  const { startServer } = await import('../serve.ts');
  const logger = createLogger(config.logLevel, {}, config.logFormat);
  let server;
  try {
    server = await startServer(config, logger, roles);
  } catch (err) {
    logger.fatal({ err }, `metal: could not start: ${err instanceof Error ? err.message : String(err)}`);
    console.error(`metal: could not start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'metal: shutting down');
    const force = setTimeout(() => {
      logger.error('metal: shutdown took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    server
      .stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        logger.error({ err }, 'metal: shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

export function registerServerCommands(program: Command): void {
  withConfigFlags(
    program
      .command('serve')
      .description('run the server roles (all three by default) in this process')
      .option('--roles <roles>', 'comma-separated roles: api, boot, builder, pxe (TFTP + proxyDHCP, not in the default)', 'api,boot,builder')
      .addHelpText('after', '\nExamples:\n  metal serve\n  METAL_DATABASE_URL=postgres://metal@db:5432/metal metal serve --roles api,boot\n  METAL_PROXYDHCP_INTERFACE=eth1 metal serve --roles api,boot,builder,pxe'),
  ).action(async (opts: Record<string, string | undefined>) => {
    try {
      const { parseRoles } = await import('../serve.ts');
      await runRoles(parseRoles(opts.roles ?? 'api,boot,builder'), opts);
    } catch (err) {
      console.error(`metal: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    }
  });

  withConfigFlags(
    program
      .command('boot')
      .description('run only the boot server (iPXE scripts, images, enrollment intake)')
      .option('--workers <n>', 'boot processes sharing the port, each with its own decision table (default: one per core)')
      .addHelpText('after', '\nExamples:\n  metal boot --boot-listen 0.0.0.0:8081\n  metal boot --workers 4'),
  ).action(async (opts: Record<string, string | undefined>) => {
    const { isBootWorker, runBootWorker, runBootWorkers } = await import('../boot-workers.ts');
    const { availableParallelism } = await import('node:os');
    const workers = opts.workers === undefined ? availableParallelism() : Number(opts.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      console.error(`metal: --workers ${JSON.stringify(opts.workers)} is invalid: expected a whole number from 1 to 256`);
      process.exit(2);
    }
    if (workers === 1) return runRoles(['boot'], opts);
    const config = configFromFlags(opts);
    const { createLogger } = await import('../../core/logger.ts');
    const logger = createLogger(config.logLevel, isBootWorker() ? { worker: true } : {}, config.logFormat);
    try {
      await (isBootWorker() ? runBootWorker(config, logger) : runBootWorkers(workers, config, logger));
    } catch (err) {
      logger.fatal({ err }, `metal: could not start: ${err instanceof Error ? err.message : String(err)}`);
      // A worker's reason reaches the primary, which says it once for all of them.
      if (!isBootWorker()) console.error(`metal: could not start: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
  });

  withConfigFlags(
    program.command('builder').description('run only an image builder (any number may run against one database)').addHelpText('after', '\nExample:\n  METAL_DATABASE_URL=postgres://metal@db/metal metal builder'),
  ).action((opts) => runRoles(['builder'], opts));

  withConfigFlags(
    program.command('migrate').description('bring the database schema up to date and exit').addHelpText('after', '\nExample:\n  metal migrate --database-url postgres://metal@db:5432/metal'),
  ).action(async (opts: Record<string, string | undefined>) => {
    const config = configFromFlags(opts);
    const { migrate } = await import('../../storage/database.ts');
    const { openConfiguredDatabase } = await import('../configured-database.ts');
    const database = await openConfiguredDatabase(config);
    try {
      const applied = await migrate(database);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the schema is up to date');
    } finally {
      await database.close();
    }
  });
}
