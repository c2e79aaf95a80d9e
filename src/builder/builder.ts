import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AppContext } from '../server/context.ts';
import { BuildQueue } from './build-queue.ts';
import { listenForBuildSignals, type BuildSignal, type SignalListener } from './build-notifications.ts';
import { startBuildRun, type RunningBuild } from './build-runner.ts';
import { findExecutable } from './nix-build.ts';
import { removeStaleStaging } from '../images/image-publisher.ts';

/** A running builder role. */
export interface RunningBuilder {
  /** e.g. `build-01-4242`: the lease owner and the `builder:` actor name. */
  readonly name: string;
  stop(): Promise<void>;
}

/** Tuning a builder; each has a default fit for production. */
export interface BuilderOptions {
  /** Defaults to `<host name>-<pid>`. */
  name?: string;
  /** How long a claim holds without renewal; default METAL_BUILD_LEASE_SECONDS (30 s). */
  leaseMs?: number;
  /** Longest wait between looks for work and for expired leases (at most 1 s). */
  pollMs?: number;
  /** Log batching interval, default 250 ms. */
  logIntervalMs?: number;
  /** Extra environment for nix-build. */
  nixEnv?: Record<string, string>;
  /** The entry expression; defaults to METAL_NIX_ENTRY. */
  nixEntry?: string;
}

/** Staging leftovers of publications interrupted this long ago are removed at start. */
const STALE_STAGING_MS = 3600_000;


/**
 * The `builder` role: claims pending builds (up to METAL_BUILD_CONCURRENCY at once) and runs them.
 * Wakes on in-process requests, on PostgreSQL NOTIFY, and on a short poll that also sweeps expired
 * leases of builders that died.
 */
export async function startBuilder(ctx: AppContext, options: BuilderOptions = {}): Promise<RunningBuilder> {
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const leaseMs = options.leaseMs ?? ctx.config.buildLeaseMs;
  // PostgreSQL wakes builders with NOTIFY; SQLite has no such signal across processes, so it polls faster.
  const defaultPollMs = ctx.storage.dialect === 'sqlite' ? 250 : 1000;
  const pollMs = Math.min(options.pollMs ?? defaultPollMs, 1000, Math.max(50, Math.floor(leaseMs / 2)));
  const queue = new BuildQueue(ctx.storage, { kind: 'builder', name }, leaseMs);
  const running = new Map<number, RunningBuild>();
  const logger = ctx.logger.child({ builder: name });
  const deps = {
    queue,
    images: ctx.images,
    notifier: ctx.notifier,
    logger,
    nixEntry: options.nixEntry ?? ctx.config.nixEntry,
    workRoot: join(ctx.config.dataDir, 'builds-work'),
    timeoutMs: ctx.config.buildTimeoutSeconds * 1000,
    bootUrl: ctx.config.bootUrl,
    nixpkgs: ctx.config.nixpkgs,
    consoles: ctx.config.consoles,
    logIntervalMs: options.logIntervalMs ?? 250,
    ...(options.nixEnv ? { nixEnv: options.nixEnv } : {}),
  };
  let stopped = false;
  let pumping: Promise<void> | undefined;
  let again = false;

  /** Claims builds while slots are free; concurrent calls fold into one pass plus one re-run. */
  const pump = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (pumping) {
      again = true;
      return pumping;
    }
    pumping = (async () => {
      do {
        again = false;
        while (!stopped && running.size < ctx.config.buildConcurrency) {
          const row = await queue.claimNext();
          if (!row) break;
          if (stopped) {
            await queue.release(Number(row.id), `builder ${name} stopped; the build goes back to the queue`);
            break;
          }
          const run = startBuildRun(row, deps);
          running.set(run.id, run);
          ctx.notifier.emit('build.updated', run.id);
          ctx.notifier.emit('machine.updated', Number(row.machine_id));
          void run.done.finally(() => {
            running.delete(run.id);
            void pump();
          });
        }
      } while (again && !stopped);
    })()
      .catch((err: unknown) => logger.warn({ err }, 'builder: could not claim a build; trying again shortly'))
      .finally(() => {
        pumping = undefined;
        if (again) void pump();
      });
    return pumping;
  };

  const sweep = async () => {
    try {
      for (const o of await queue.sweepExpired()) {
        logger.warn({ buildId: o.id, action: o.action }, `builder: build ${o.id} lost its builder; ${o.action === 'retried' ? 'trying it again' : 'failed'}`);
        ctx.notifier.emit('build.updated', o.id);
      }
    } catch (err) {
      logger.warn({ err }, 'builder: lease sweep failed');
    }
  };

  const onRequested = () => void pump();
  const onCancelled = (buildId: number) => running.get(buildId)?.stop('cancelled');
  ctx.notifier.on('build.requested', onRequested);
  ctx.notifier.on('build.cancelled', onCancelled);

  let listener: SignalListener | undefined;
  let listening: Promise<void> | undefined;
  const onSignal = (signal: BuildSignal) => (signal.kind === 'requested' ? void pump() : onCancelled(signal.buildId));
  const listen = () => {
    if (ctx.storage.dialect !== 'postgres' || listener || listening || stopped) return;
    listening = listenForBuildSignals(ctx.config.databaseUrl, onSignal, logger, () => {
      const lost = listener;
      listener = undefined;
      void lost?.close();
    })
      .then((l) => {
        if (stopped) void l.close();
        else listener = l;
      })
      .catch((err: unknown) => logger.warn({ err }, 'builder: LISTEN failed; polling instead'))
      .finally(() => {
        listening = undefined;
      });
  };
  listen();
  await listening;

  const timer = setInterval(() => {
    listen();
    void sweep().then(pump);
  }, pollMs);
  if (!findExecutable('nix-build')) logger.warn('builder: nix-build is not on PATH; every build will fail until it is installed (see docs/builder.md)');
  logger.info({ concurrency: ctx.config.buildConcurrency, entry: deps.nixEntry, leaseMs }, `builder: ${name} ready`);
  await removeStaleStaging(ctx.images, STALE_STAGING_MS).catch((err: unknown) => logger.warn({ err }, 'builder: could not clean staging leftovers'));
  await sweep();
  await pump();

  return {
    name,
    async stop() {
      stopped = true;
      clearInterval(timer);
      ctx.notifier.off('build.requested', onRequested);
      ctx.notifier.off('build.cancelled', onCancelled);
      await pumping;
      for (const run of running.values()) run.stop('shutdown');
      await Promise.all([...running.values()].map((r) => r.done));
      await listening;
      await listener?.close();
      logger.info(`builder: ${name} stopped`);
    },
  };
}
