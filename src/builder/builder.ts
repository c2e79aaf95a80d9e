import { RepeatedFailure } from '../core/repeated-failure.ts';
import { hostname } from 'node:os';
import type { BuildLifecycle } from '../core/build-lifecycle.ts';
import type { Logger } from '../core/logger.ts';
import type { Notifier } from '../core/notifier.ts';
import type { BuilderPresenceStore } from '../core/ports.ts';
import { startPresenceHeartbeat } from './presence-heartbeat.ts';
import type { ImageLayout } from '../images/image-layout.ts';
import { removeStaleStaging } from '../images/image-publisher.ts';
import { startBuildRun, type RunningBuild } from './build-runner.ts';
import { sweepBuildWork } from './work-sweep.ts';
import { findExecutable, hasNixDaemon, type BuildIsolation, type NixpkgsPin } from './nix-build.ts';
import { BootCheckUnavailable, type BootCheckMode } from './boot-check/boot-check.ts';
import { findQemu, kvmUsable } from '../vm/qemu-process.ts';
import { BuilderCannotStart } from './builder-cannot-start.ts';
import { EfiSigner, SecureBootUnavailable, type SecureBootKeys } from '../images/secure-boot.ts';

/** A running builder role. */
export interface RunningBuilder {
  /** e.g. `build-01-4242`: the lease owner and the `builder:` actor name. */
  readonly name: string;
  stop(): Promise<void>;
}

/** What a builder works with. */
export interface BuilderDeps {
  builds: Pick<BuildLifecycle, 'queueFor'>;
  /** Where the builder says it is running (its heartbeat), so waiting builds can tell when none is. */
  presence: BuilderPresenceStore;
  notifier: Notifier;
  images: ImageLayout;
  logger: Logger;
  settings: BuilderSettings;
  /** Image retention (METAL_KEEP_BUILDS), run after each successful build here and periodically. */
  retention?: { sweep(): Promise<{ swept: number[]; leftovers: number[] }> };
  /**
   * True when build requests and cancellations from other processes arrive as notifier signals
   * (PostgreSQL); otherwise the builder polls faster.
   */
  signalsAcrossProcesses: boolean;
}

/** The builder's part of the configuration. */
export interface BuilderSettings {
  /** METAL_NIX_ENTRY */
  nixEntry: string;
  /** METAL_BUILD_CONCURRENCY */
  buildConcurrency: number;
  /** METAL_BUILD_LEASE_SECONDS, in ms */
  buildLeaseMs: number;
  /** METAL_BUILD_TIMEOUT */
  buildTimeoutSeconds: number;
  /** Build directories go below it, e.g. `<data dir>/builds-work`. */
  workRoot: string;
  /** METAL_BOOT_URL, for artifact URLs. */
  bootUrl: string;
  /** METAL_NIXPKGS; undefined: `<nixpkgs>` from NIX_PATH. */
  nixpkgs: NixpkgsPin | undefined;
  /** METAL_CONSOLE, e.g. `['tty0', 'ttyS1,115200']`. */
  consoles: string[];
  /** METAL_BUILD_UNSANDBOXED: without a Nix daemon, build anyway, without a sandbox. */
  buildUnsandboxed: boolean;
  /** METAL_BUILD_BOOT_CHECK; default `off`. */
  bootCheck?: BootCheckMode;
  /** METAL_BUILD_BOOT_CHECK_TIMEOUT, in ms; default 600 s. */
  bootCheckTimeoutMs?: number;
  /** METAL_SECURE_BOOT_KEY and METAL_SECURE_BOOT_CERT: each published kernel is signed with them. */
  secureBoot?: SecureBootKeys | undefined;
}

/**
 * Where this host's builds run: the Nix daemon's sandbox when there is a daemon; without one, only
 * when METAL_BUILD_UNSANDBOXED allows it, since a configuration's derivations would then run as this
 * user with everything it can read.
 */
export function chooseIsolation(settings: Pick<BuilderSettings, 'buildUnsandboxed'>, daemon = hasNixDaemon()): BuildIsolation {
  if (daemon) return 'daemon';
  if (settings.buildUnsandboxed) return 'unsandboxed';
  throw new UnsandboxedBuildRefused();
}

/** The builder will not build on a host without a Nix daemon unless METAL_BUILD_UNSANDBOXED=1 says so. */
export class UnsandboxedBuildRefused extends BuilderCannotStart {
  constructor() {
    super(
      'builder: no Nix daemon on this host (no /nix/var/nix/daemon-socket/socket, NIX_REMOTE is not "daemon"), so builds would run without a sandbox as this user; ' +
        'use a Nix daemon (a NixOS builder host), or set METAL_BUILD_UNSANDBOXED=1 to accept that (see docs/builder.md)',
    );
    this.name = 'UnsandboxedBuildRefused';
  }
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
  /** How often retention and the work-directory sweep run besides after builds (default 10 minutes). */
  maintenanceIntervalMs?: number;
  /** How often the builder writes its presence row (default BUILDER_HEARTBEAT_MS). */
  heartbeatMs?: number;
}

/** Staging leftovers of publications interrupted this long ago are removed at start. */
const STALE_STAGING_MS = 3600_000;
const MAINTENANCE_INTERVAL_MS = 600_000;


/**
 * The `builder` role: claims pending builds (up to METAL_BUILD_CONCURRENCY at once) and runs them.
 * Wakes on build-request signals (from this process, or relayed from others by the storage) and on
 * a short poll that also sweeps expired leases of builders that died.
 */
export async function startBuildWorker(deps: BuilderDeps, options: BuilderOptions = {}): Promise<RunningBuilder> {
  const { settings, notifier } = deps;
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const leaseMs = options.leaseMs ?? settings.buildLeaseMs;
  // Where other processes' requests arrive as signals the poll is only a safety net; elsewhere it is faster.
  const defaultPollMs = deps.signalsAcrossProcesses ? 1000 : 250;
  const pollMs = Math.min(options.pollMs ?? defaultPollMs, 1000, Math.max(50, Math.floor(leaseMs / 2)));
  const hasNix = findExecutable('nix-build') !== undefined;
  // Without nix-build every build fails with a clear message anyway; the check matters where Nix runs.
  const isolation = hasNix ? chooseIsolation(settings) : settings.buildUnsandboxed ? 'unsandboxed' : 'daemon';
  const bootCheck = settings.bootCheck ?? 'off';
  if (bootCheck !== 'off' && findQemu() === undefined) throw new BootCheckUnavailable(bootCheck);
  let signer: EfiSigner | undefined;
  try {
    signer = settings.secureBoot ? EfiSigner.find(settings.secureBoot, 'the builder') : undefined;
  } catch (err) {
    if (err instanceof SecureBootUnavailable) throw new BuilderCannotStart(`builder: ${err.message}`);
    throw err;
  }
  const queue = deps.builds.queueFor({ kind: 'builder', name }, leaseMs);
  const running = new Map<number, RunningBuild>();
  const logger = deps.logger.child({ builder: name });
  const runner = {
    queue,
    images: deps.images,
    notifier,
    logger,
    nixEntry: options.nixEntry ?? settings.nixEntry,
    workRoot: settings.workRoot,
    timeoutMs: settings.buildTimeoutSeconds * 1000,
    bootUrl: settings.bootUrl,
    nixpkgs: settings.nixpkgs,
    consoles: settings.consoles,
    isolation,
    bootCheck,
    signer,
    bootCheckTimeoutMs: settings.bootCheckTimeoutMs,
    logIntervalMs: options.logIntervalMs ?? 250,
    ...(options.nixEnv ? { nixEnv: options.nixEnv } : {}),
  };
  let stopped = false;
  // While the database is down: the first failure at once, then a line a minute, then one when it is back.
  const claimFailures = new RepeatedFailure(logger, 'builder: could not claim a build; trying again shortly', 'builder: builds are claimed again');
  const sweepFailures = new RepeatedFailure(logger, 'builder: lease sweep failed', 'builder: the lease sweep works again');
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
        while (!stopped && running.size < settings.buildConcurrency) {
          const row = await queue.claimNext();
          if (!row) break;
          if (stopped) {
            await queue.release(row.id, `builder ${name} stopped; the build goes back to the queue`);
            break;
          }
          const run = startBuildRun(row, runner);
          running.set(run.id, run);
          void run.done.finally(() => {
            running.delete(run.id);
            void pump();
          });
        }
      } while (again && !stopped);
    })()
      .then(
        () => claimFailures.succeeded(),
        (err: unknown) => claimFailures.failed(err),
      )
      .finally(() => {
        pumping = undefined;
        if (again) void pump();
      });
    return pumping;
  };

  const sweep = async () => {
    try {
      for (const o of await queue.sweepExpired()) {
        logger.warn({ build: o.id, service_tag: o.serviceTag, action: o.action }, `builder: build ${o.id} of ${o.serviceTag} lost its builder; ${o.action === 'retried' ? 'trying it again' : 'failed'}`);
      }
      sweepFailures.succeeded();
    } catch (err) {
      sweepFailures.failed(err);
    }
  };

  // Retention and the work-directory sweep: one pass at a time, another queued when asked meanwhile.
  let maintaining: Promise<void> | undefined;
  let maintainAgain = false;
  const maintain = (): Promise<void> => {
    if (maintaining) {
      maintainAgain = true;
      return maintaining;
    }
    maintaining = (async () => {
      do {
        maintainAgain = false;
        try {
          const removed = await sweepBuildWork(settings.workRoot, queue, new Set(running.keys()));
          if (removed.length > 0) logger.info({ builds: removed }, `builder: removed ${removed.length} leftover work directories of finished builds`);
          const outcome = await deps.retention?.sweep();
          if (outcome && outcome.swept.length > 0) logger.info({ builds: outcome.swept }, `builder: retention deleted the images of ${outcome.swept.length} builds`);
          if (outcome && outcome.leftovers.length > 0) {
            logger.info({ builds: outcome.leftovers }, `builder: removed the files of ${outcome.leftovers.length} builds that retention had already marked deleted`);
          }
        } catch (err) {
          logger.warn({ err }, 'builder: retention sweep failed; trying again later');
        }
      } while (maintainAgain && !stopped);
    })().finally(() => {
      maintaining = undefined;
    });
    return maintaining;
  };
  const onFinished = (_id: number, result: string) => {
    if (result === 'success') void maintain();
  };

  const onRequested = () => void pump();
  const onCancelled = (buildId: number) => running.get(buildId)?.stop('cancelled');
  notifier.on('build.requested', onRequested);
  notifier.on('build.cancelled', onCancelled);
  notifier.on('build.finished', onFinished);

  const timer = setInterval(() => void sweep().then(pump), pollMs);
  const maintenance = setInterval(() => void maintain(), options.maintenanceIntervalMs ?? MAINTENANCE_INTERVAL_MS);
  if (isolation === 'unsandboxed') logger.warn('builder: building without a sandbox (METAL_BUILD_UNSANDBOXED=1): a configuration\'s derivations run as this user');
  if (!hasNix) logger.warn('builder: nix-build is not on PATH; every build will fail until it is installed (see docs/builder.md)');
  const extras = [
    ...(bootCheck !== 'off' ? [`each image boots in a VM before publication (METAL_BUILD_BOOT_CHECK=${bootCheck}${kvmUsable() ? ', KVM' : ', no KVM: emulated'})`] : []),
    ...(signer ? [`kernels are signed for Secure Boot by ${signer.subject}`] : []),
  ];
  logger.info(
    { concurrency: settings.buildConcurrency, entry: runner.nixEntry, leaseMs, boot_check: bootCheck, secure_boot: signer ? signer.subject : null },
    `builder: ${name} ready${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`,
  );
  const heartbeat = await startPresenceHeartbeat(
    deps.presence,
    { name, concurrency: settings.buildConcurrency, bootCheck, secureBoot: signer ? signer.subject : null },
    () => running.size,
    logger,
    options.heartbeatMs,
  );
  await removeStaleStaging(deps.images, STALE_STAGING_MS).catch((err: unknown) => logger.warn({ err }, 'builder: could not clean staging leftovers'));
  await sweep();
  await maintain();
  await pump();

  return {
    name,
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(maintenance);
      notifier.off('build.requested', onRequested);
      notifier.off('build.cancelled', onCancelled);
      notifier.off('build.finished', onFinished);
      await pumping;
      await maintaining;
      for (const run of running.values()) run.stop('shutdown');
      await Promise.all([...running.values()].map((r) => r.done));
      await heartbeat.stop();
      logger.info(`builder: ${name} stopped`);
    },
  };
}
