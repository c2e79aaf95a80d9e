import { realpath } from 'node:fs/promises';
import type { Notifier } from '../core/notifier.ts';
import type { ImageLayout } from '../images/image-layout.ts';
import { ImageResultError, pointMachineAt, publishBuildImage, removeBuildImage } from '../images/image-publisher.ts';
import type { Logger } from '../core/logger.ts';
import { BuildLogWriter } from './build-log-writer.ts';
import { MAX_LOG_BYTES, type BuildQueue } from '../core/build-lifecycle.ts';
import type { BuildRecord } from '../core/ports.ts';
import { prepareWorkspace, type BuildWorkspace } from './build-workspace.ts';
import { describeNixpkgs, runNixBuild, type BuildIsolation, type NixpkgsPin } from './nix-build.ts';
import { readResultNixpkgs } from '../images/result-nixpkgs.ts';
import { DEFAULT_BOOT_CHECK_TIMEOUT_MS, runBootCheck, type BootCheckMode, type BootCheckResult } from './boot-check/boot-check.ts';
import type { EfiSigner } from '../images/secure-boot.ts';

/** Why a running build was stopped from outside nix-build. */
export type StopReason = 'cancelled' | 'lost' | 'shutdown';

/** What one build run needs from its builder. */
export interface RunnerDeps {
  queue: BuildQueue;
  images: ImageLayout;
  notifier: Notifier;
  logger: Logger;
  nixEntry: string;
  /** Where nix-build's builds run (see chooseIsolation). */
  isolation: BuildIsolation;
  /** Build directories go below it, e.g. `<data dir>/builds-work`. */
  workRoot: string;
  timeoutMs: number;
  bootUrl: string;
  /** Log batching interval. */
  logIntervalMs: number;
  /** Extra environment for nix-build. */
  nixEnv?: Record<string, string>;
  /** METAL_NIXPKGS; undefined: `<nixpkgs>` from NIX_PATH. */
  nixpkgs?: NixpkgsPin | undefined;
  /** METAL_CONSOLE */
  consoles?: string[];
  /** METAL_BUILD_BOOT_CHECK; undefined: off. */
  bootCheck?: BootCheckMode;
  /** METAL_BUILD_BOOT_CHECK_TIMEOUT, in ms. */
  bootCheckTimeoutMs?: number;
  /** Signs each published kernel for Secure Boot (METAL_SECURE_BOOT_KEY). */
  signer?: EfiSigner | undefined;
}

/** A build being run: stop it with a reason, await its end. */
export interface RunningBuild {
  id: number;
  stop(reason: StopReason): void;
  done: Promise<void>;
}

/**
 * Runs one claimed build to its end: fresh workspace, nix-build with the lease renewed meanwhile,
 * publication, then success, failure with a one-line reason, or release on shutdown.
 */
export function startBuildRun(row: BuildRecord, deps: RunnerDeps): RunningBuild {
  const id = row.id;
  const abort = new AbortController();
  let stopReason: StopReason | undefined;
  const stop = (reason: StopReason) => {
    if (stopReason) return;
    stopReason = reason;
    abort.abort();
  };
  const done = runBuild(row, deps, abort.signal, stop, () => stopReason).catch((err: unknown) => {
    deps.logger.error({ err, build: id, service_tag: row.service_tag }, `builder: build ${id} of ${row.service_tag} ended with an internal error`);
  });
  return { id, stop, done };
}

async function runBuild(
  row: BuildRecord,
  deps: RunnerDeps,
  signal: AbortSignal,
  stop: (reason: StopReason) => void,
  stopReason: () => StopReason | undefined,
): Promise<void> {
  const { queue, notifier } = deps;
  // Every line about this build names it and its machine, in its fields and its message.
  const logger = deps.logger.child({ build: row.id, service_tag: row.service_tag });
  const id = row.id;
  const tag = row.service_tag;
  const log = new BuildLogWriter((text) => queue.appendLog(id, text), {
    intervalMs: deps.logIntervalMs,
    maxBytes: MAX_LOG_BYTES,
    onFlushed: () => notifier.emit('build.updated', id),
  });
  const renewal = setInterval(() => {
    queue.renew(id).then(
      (held) => {
        if (!held) stop('lost');
      },
      (err: unknown) => logger.warn({ err }, `builder: could not renew the lease of build ${id} of ${tag}`),
    );
  }, Math.max(50, Math.floor(queue.leaseMs / 3)));
  let workspace: BuildWorkspace | undefined;
  const finish = async (outcome: () => Promise<unknown>) => {
    clearInterval(renewal);
    await log.flush();
    await outcome();
  };
  const fail = async (reason: string) => {
    logger.warn({ reason }, `builder: build ${id} of ${tag} failed: ${reason}`);
    await finish(() => queue.fail(id, reason));
  };
  try {
    workspace = await prepareWorkspace(deps.workRoot, { id, hostname: row.hostname, serviceTag: row.service_tag, files: row.config_files, profileConfig: row.profile_config, healthCheck: row.health_check ?? null });
    logger.info({ hostname: row.hostname, attempt: row.attempts }, `builder: build ${id} of ${tag} started`);
    log.write(`builder ${queue.owner}: building ${row.hostname} (${row.service_tag}), attempt ${row.attempts}\n`);
    if (row.profile !== null) log.write(`builder ${queue.owner}: profile ${row.profile} is imported before the machine's module\n`);
    if (row.health_check) log.write(`builder ${queue.owner}: the image runs the profile's health check and sends its result with its booted report\n`);
    log.write(`builder ${queue.owner}: nix-build ${deps.nixEntry}\n`);
    log.write(
      deps.isolation === 'daemon'
        ? `builder ${queue.owner}: builds run in the Nix daemon's sandbox; evaluation is restricted to the entry, this build's files and nixpkgs\n`
        : `builder ${queue.owner}: WARNING: building without a sandbox (METAL_BUILD_UNSANDBOXED=1); evaluation is restricted to the entry, this build's files and nixpkgs\n`,
    );
    log.write(`builder ${queue.owner}: nixpkgs ${describeNixpkgs(deps.nixpkgs)}\n`);
    const result = await runNixBuild({
      nixpkgs: deps.nixpkgs,
      consoles: deps.consoles,
      isolation: deps.isolation,
      entry: deps.nixEntry,
      configurationFile: workspace.configurationFile,
      hostname: row.hostname,
      serviceTag: row.service_tag,
      outLink: workspace.outLink,
      timeoutMs: deps.timeoutMs,
      signal,
      onOutput: (text) => log.write(text),
      ...(deps.nixEnv ? { env: deps.nixEnv } : {}),
    });
    const stopped = async () => {
      const reason = stopReason();
      logger.info({ reason }, `builder: build ${id} of ${tag} stopped (${reason})`);
      if (reason === 'shutdown') {
        await finish(() => queue.release(id, `builder ${queue.owner} stopped; the build goes back to the queue`));
      } else {
        await finish(async () => undefined);
      }
    };
    if (result.outcome === 'aborted') {
      await stopped();
      return;
    }
    if (result.outcome === 'timeout') {
      await fail(`nix-build did not finish within ${Math.round(deps.timeoutMs / 1000)} s (METAL_BUILD_TIMEOUT) and was stopped`);
      return;
    }
    if (result.outcome === 'failed') {
      await fail(result.lastError ?? `nix-build exited with code ${result.exitCode}`);
      return;
    }
    const resolved = await readResultNixpkgs(workspace.outLink);
    if (resolved) log.write(`builder ${queue.owner}: built with ${resolved}\n`);
    await publish(row, { ...deps, logger }, workspace.outLink, log, { finish, fail, stopped, signal });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await fail(`builder ${queue.owner}: ${message}`);
    throw err;
  } finally {
    clearInterval(renewal);
    await workspace?.remove().catch(() => undefined);
  }
}

async function publish(
  row: BuildRecord,
  deps: RunnerDeps,
  outLink: string,
  log: BuildLogWriter,
  end: {
    finish: (outcome: () => Promise<unknown>) => Promise<void>;
    fail: (reason: string) => Promise<void>;
    /** The build was stopped from outside (cancelled, lost, shutdown). */
    stopped: () => Promise<void>;
    signal: AbortSignal;
  },
): Promise<void> {
  const { finish, fail } = end;
  // deps.logger names the build and its machine already (runBuild's child logger).
  const { queue, images, logger } = deps;
  const id = row.id;
  const tag = row.service_tag;
  let storePath: string;
  try {
    storePath = await realpath(outLink);
  } catch {
    await fail(`nix-build succeeded but left no result link at ${outLink}`);
    return;
  }
  const earlier = await queue.findPublishedStorePath(storePath, id);
  let outcome;
  try {
    outcome = await publishBuildImage(images, {
      buildId: id,
      resultDir: storePath,
      extraKernelParams: row.kernel_params,
      signer: deps.signer,
      ...(earlier !== undefined ? { reuseBuildId: earlier } : {}),
    });
  } catch (err) {
    if (!(err instanceof ImageResultError)) throw err;
    await fail(err.message);
    return;
  }
  if (outcome.reusedFrom !== undefined) {
    log.write(`builder ${queue.owner}: ${storePath} is already published by build ${outcome.reusedFrom}; its files were linked, not copied\n`);
  } else {
    const f = outcome.bootJson.files;
    log.write(`builder ${queue.owner}: published ${storePath}: bzImage ${f.bzImage.size} bytes, initrd ${f.initrd.size} bytes\n`);
  }
  const signed = outcome.bootJson.secure_boot;
  if (signed) log.write(`builder ${queue.owner}: the kernel is signed for Secure Boot by ${signed.subject} (certificate sha256 ${signed.cert_sha256})\n`);
  const check = await checkBoot(row, deps, log, end.signal);
  if (check !== undefined && check.outcome !== 'passed') {
    await removeBuildImage(images, id);
    if (check.outcome === 'aborted') await end.stopped();
    else await fail(check.reason);
    return;
  }
  const bootCheckSeconds = check?.seconds;
  // A held build (a rollout's) is published without pointing the machine at it: its wave does that.
  if (!row.hold) await pointMachineAt(images, row.service_tag, id);
  let succeeded = false;
  try {
    await finish(async () => {
      succeeded = await queue.succeed(id, {
        storePath,
        artifactUrl: `${deps.bootUrl}/images/builds/${row.image_key}/`,
        note: `build ${id} published ${storePath}${bootCheckSeconds !== undefined ? `; it booted in a VM in ${bootCheckSeconds} s` : ''}`,
        ...(outcome.bootJson.nixpkgs ? { nixpkgs: outcome.bootJson.nixpkgs } : {}),
        ...(bootCheckSeconds !== undefined ? { bootCheckSeconds } : {}),
      });
    });
  } finally {
    if (!succeeded) {
      // Cancelled, taken over or deleted while publishing: the link goes back to what the machine boots.
      logger.info(`builder: build ${id} of ${tag} ended elsewhere during publication; its image is withdrawn`);
      const current = await queue.imageBuildId(row.machine_id);
      await pointMachineAt(images, row.service_tag, current);
      await removeBuildImage(images, id);
    }
  }
  if (succeeded) logger.info({ storePath }, `builder: build ${id} of ${tag} published`);
}

/**
 * METAL_BUILD_BOOT_CHECK on a build just published: undefined when it is off or the build's profile
 * skips it, else how the check ended. Says so in the log and signals the outcome (for the metrics).
 */
async function checkBoot(row: BuildRecord, deps: RunnerDeps, log: BuildLogWriter, signal: AbortSignal): Promise<BootCheckResult | undefined> {
  const mode = deps.bootCheck ?? 'off';
  if (mode === 'off') return undefined;
  if (row.skip_boot_check) {
    log.write(`boot check: skipped: profile ${row.profile ?? '?'} asks its machines' builds to skip it (METAL_BUILD_BOOT_CHECK=${mode})\n`);
    deps.notifier.emit('build.boot_checked', row.id, 'skipped', null);
    return undefined;
  }
  // The published files are the bytes machines will get; no machine is pointed at them yet.
  const started = Date.now();
  const check = await runBootCheck({
    mode,
    imageDir: deps.images.buildDir(row.id),
    serviceTag: row.service_tag,
    buildId: row.id,
    timeoutMs: deps.bootCheckTimeoutMs ?? DEFAULT_BOOT_CHECK_TIMEOUT_MS,
    signal,
    onOutput: (text) => log.write(text),
  });
  if (check.outcome === 'aborted') return check;
  deps.notifier.emit('build.boot_checked', row.id, check.outcome, (Date.now() - started) / 1000);
  if (check.outcome === 'passed') {
    const health = check.health === null ? '' : check.health.ok ? '; its health check passed' : `; its health check failed${check.health.exit_code === null ? '' : ` (exit ${check.health.exit_code})`}, which METAL_BUILD_BOOT_CHECK=booted does not judge`;
    log.write(`boot check: passed: the image reported booted after ${check.seconds} s${health}\n`);
  }
  return check;
}
