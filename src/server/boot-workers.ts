import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { migrate } from '../storage/database.ts';
import { openConfiguredDatabase } from './configured-database.ts';
import { startServer } from './serve.ts';

/** What a worker tells the primary: its listener is up, or it could not start (and why). */
type WorkerMessage = { metal: 'boot-ready'; address: string } | { metal: 'boot-failed'; reason: string };

/** How long the first restart of a worker that died waits; each restart in a row waits twice as long. */
const RESPAWN_MS = 1000;
/** The longest wait before a restart, however often workers die in a row. */
const RESPAWN_MAX_MS = 30_000;
/** How long the primary waits for its workers to stop after SIGTERM. */
const STOP_MS = 25_000;

/** True in a process forked by `runBootWorkers`. */
export function isBootWorker(): boolean {
  return cluster.isWorker && process.env.METAL_BOOT_WORKER === '1';
}

/** The wait before restarting a worker after `deaths` deaths in a row (1, 2, 4 … 30 s). */
export function respawnDelayMs(deaths: number): number {
  return Math.min(RESPAWN_MAX_MS, RESPAWN_MS * 2 ** Math.max(0, Math.min(deaths - 1, 16)));
}

/**
 * `metal boot --workers N`: N boot processes sharing the boot listener's port (node:cluster), each with
 * its own connection and decision table. The primary migrates once, starts the workers and says
 * `metal: ready` when all listen. A worker that cannot start while the workers come up (the port is
 * taken, say) stops them all: the returned promise rejects with that worker's reason, as a single
 * process fails to start. Once up, a worker that dies is started again, after a wait that doubles with
 * each death in a row (up to 30 s) and starts over once a new worker is up. SIGTERM stops them all.
 */
export async function runBootWorkers(count: number, config: Readonly<Config>, logger: Logger): Promise<void> {
  const database = await openConfiguredDatabase(config);
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
  let stopping = false;
  let started = false;
  let ready = 0;
  let deathsInARow = 0;
  let startFailed: ((err: Error) => void) | undefined;
  let allReady: (() => void) | undefined;
  const up = new Promise<void>((resolve, reject) => {
    allReady = resolve;
    startFailed = reject;
  });
  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
  /** Stops every worker (SIGTERM), resolving once all exited or after STOP_MS. */
  const stopAll = async (): Promise<boolean> => {
    stopping = true;
    const workers = live();
    let timer: NodeJS.Timeout | undefined;
    const exited = Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    ).then(() => true);
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), STOP_MS);
    });
    const inTime = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    return inTime;
  };

  const spawnWorker = (): Worker => {
    const worker = cluster.fork({ METAL_BOOT_WORKER: '1' });
    let reason: string | undefined;
    worker.on('message', (msg: WorkerMessage) => {
      if (msg?.metal === 'boot-failed') reason = String(msg.reason);
      if (msg?.metal !== 'boot-ready') return;
      deathsInARow = 0;
      if (started) {
        logger.info({ worker_pid: worker.process.pid }, 'boot: a worker was started again and listens');
        return;
      }
      ready += 1;
      if (ready === count) {
        started = true;
        logger.info({ addresses: { boot: msg.address }, workers: count }, 'metal: ready');
        allReady?.();
      }
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (!started) {
        // While the workers come up, one that cannot start stops them all, as one process would.
        startFailed?.(new Error(reason ?? `a boot worker exited (code ${code}, signal ${signal}) before it listened`));
        return;
      }
      deathsInARow += 1;
      const delayMs = respawnDelayMs(deathsInARow);
      logger.error({ worker_pid: worker.process.pid, code, signal, reason, restart_in_ms: delayMs }, `boot: a worker died; starting another in ${delayMs / 1000} s`);
      setTimeout(() => {
        if (!stopping) spawnWorker();
      }, delayMs).unref();
    });
    return worker;
  };
  const shutdown = (signal: string) => {
    if (stopping) return;
    logger.info({ signal }, 'metal: shutting down the boot workers');
    stopAll().then((inTime) => {
      if (!inTime) logger.error(`metal: boot workers took longer than ${STOP_MS / 1000} s to stop; exiting`);
      process.exit(inTime ? 0 : 1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  logger.info({ workers: count, bootListen: config.bootListen }, 'metal: starting boot workers');
  for (let i = 0; i < count; i++) spawnWorker();
  try {
    await up;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** In a worker: runs the boot role, tells the primary where it listens, and stops with it. */
export async function runBootWorker(config: Readonly<Config>, logger: Logger): Promise<void> {
  // A primary that died (even by SIGKILL) takes its workers with it.
  process.on('disconnect', () => process.exit(1));
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, logger, ['boot'], { migrate: false, announce: false });
  } catch (err) {
    // The primary stops the other workers and fails with this reason when the workers are coming up.
    await tell({ metal: 'boot-failed', reason: err instanceof Error ? err.message : String(err) });
    throw err;
  }
  await tell({ metal: 'boot-ready', address: server.addresses.boot ?? '' });
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

/** Sends a message to the primary, resolved once it is handed over (or at once without a primary). */
function tell(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}
