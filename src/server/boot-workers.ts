import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { migrate, openDatabase } from '../storage/database.ts';
import { startServer } from './serve.ts';

/** What a worker tells the primary once its listener is up. */
interface ReadyMessage {
  metal: 'boot-ready';
  address: string;
}

/** How long a worker that died waits before it is started again. */
const RESPAWN_MS = 1000;
/** How long the primary waits for its workers to stop after SIGTERM. */
const STOP_MS = 25_000;

/** True in a process forked by `runBootWorkers`. */
export function isBootWorker(): boolean {
  return cluster.isWorker && process.env.METAL_BOOT_WORKER === '1';
}

/**
 * `metal boot --workers N`: N boot processes sharing the boot listener's port (node:cluster), each with
 * its own connection and decision table. The primary migrates once, starts the workers, says
 * `metal: ready` when all listen, starts a worker again when one dies, and stops them all on SIGTERM.
 */
export async function runBootWorkers(count: number, config: Readonly<Config>, logger: Logger): Promise<void> {
  const database = await openDatabase(config.databaseUrl);
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
  let stopping = false;
  let ready = 0;
  const spawnWorker = (): Worker => {
    const worker = cluster.fork({ METAL_BOOT_WORKER: '1' });
    worker.on('message', (msg: ReadyMessage) => {
      if (msg?.metal !== 'boot-ready') return;
      ready += 1;
      if (ready === count) logger.info({ addresses: { boot: msg.address }, workers: count }, 'metal: ready');
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      logger.error({ pid: worker.process.pid, code, signal }, 'boot: a worker died; starting another');
      setTimeout(() => {
        if (!stopping) spawnWorker();
      }, RESPAWN_MS).unref();
    });
    return worker;
  };
  logger.info({ workers: count, bootListen: config.bootListen }, 'metal: starting boot workers');
  for (let i = 0; i < count; i++) spawnWorker();

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'metal: shutting down the boot workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const force = setTimeout(() => {
      logger.error('metal: boot workers took longer than 25 s to stop; exiting');
      process.exit(1);
    }, STOP_MS);
    force.unref();
    Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    ).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** In a worker: runs the boot role, tells the primary where it listens, and stops with it. */
export async function runBootWorker(config: Readonly<Config>, logger: Logger): Promise<void> {
  // A primary that died (even by SIGKILL) takes its workers with it.
  process.on('disconnect', () => process.exit(1));
  const server = await startServer(config, logger, ['boot'], { migrate: false, announce: false });
  process.send?.({ metal: 'boot-ready', address: server.addresses.boot ?? '' } satisfies ReadyMessage);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
