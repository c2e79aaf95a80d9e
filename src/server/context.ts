import type { onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config/config.ts';
import { BuildLifecycle } from '../core/build-lifecycle.ts';
import { LAST_BACKUP_SETTING, parseBackupRecord } from '../core/backup-record.ts';
import type { Logger } from '../core/logger.ts';
import { MachineService } from '../core/machine-service.ts';
import { BulkService } from '../core/bulk-service.ts';
import { ProfileService } from '../core/profile-service.ts';
import { RuleService } from '../core/rule-service.ts';
import { MachineImageService } from '../core/machine-images.ts';
import { BuildRetention } from '../core/build-retention.ts';
import { RolloutEngine } from '../core/rollout-engine.ts';
import { RolloutService } from '../core/rollout-service.ts';
import { hostname } from 'node:os';
import { Notifier } from '../core/notifier.ts';
import type { BootFeed, Storage } from '../core/ports.ts';
import type { Authenticator } from '../http/access.ts';
import type { HttpPlatform } from '../http/http-server.ts';
import { ImageLayout } from '../images/image-layout.ts';
import { AuthService } from '../auth/auth-service.ts';
import { createAuthenticator } from '../auth/authenticator.ts';
import { createEnrollGuard } from '../auth/enroll-guard.ts';
import { ensureFirstAdmin } from '../auth/first-admin.ts';
import { loadSecretKey } from '../auth/secret-key.ts';
import { SqlBootFeed } from '../storage/boot-feed.ts';
import { MetalMetrics, type BuildResult } from '../metrics/metal-metrics.ts';
import { WebhookService } from '../webhooks/webhook-service.ts';
import { startBuildSignalRelay, type SignalRelay } from '../storage/build-signal-relay.ts';
import { migrate } from '../storage/database.ts';
import { openConfiguredDatabase } from './configured-database.ts';
import { DhcpLeaseStore, leaseDb } from '../storage/dhcp-lease-store.ts';
import { SqlStorage } from '../storage/storage.ts';
import type { BmcTarget } from '../power/bmc-target.ts';
import { createPowerDriver } from '../power/create-power-driver.ts';
import { MachinePowerService } from '../power/machine-power.ts';
import type { PowerDriver } from '../power/power-driver.ts';
import { PowerRunner, type PowerRunnerOptions } from '../power/power-runner.ts';
import { Readiness } from '../http/readiness.ts';

/**
 * Everything the roles of one process share: the one place where concrete parts are chosen. Built
 * once by `createContext`; each role takes from it exactly what its typed options list.
 */
export interface AppContext {
  config: Readonly<Config>;
  logger: Logger;
  storage: Storage;
  /** The boot server's change feed, and whether its versions commit in order (SQLite) or may not (PostgreSQL). */
  bootFeed: { source: BootFeed; ordered: boolean };
  notifier: Notifier;
  images: ImageLayout;
  machines: MachineService;
  builds: BuildLifecycle;
  /** Fleet configuration: profiles, enrollment rules, bulk actions (issue 15). */
  profiles: ProfileService;
  rules: RuleService;
  bulk: BulkService;
  /** What each machine boots: rollbacks and rollout waves point machines at builds through it. */
  machineImages: MachineImageService;
  /** Deletes published images beyond METAL_KEEP_BUILDS (run by builders). */
  retention: BuildRetention;
  /** Rollouts as the API sees them. */
  rollouts: RolloutService;
  /** Drives active rollouts (started with the api role: `rolloutEngine.start()`). */
  rolloutEngine: RolloutEngine;
  authenticator: Authenticator;
  /** Users, sessions, API tokens, and the secret box for sensitive columns. */
  auth: AuthService;
  /** The pxe role's full DHCP leases (METAL_DHCP_RANGE). */
  dhcpLeases: DhcpLeaseStore;
  /** Runs before enrollment (rate limit, enrollment token). */
  enrollGuard?: onRequestAsyncHookHandler;
  /** Webhook endpoints (the delivery worker runs with the api role). */
  webhooks: WebhookService;
  /** This process's Prometheus metrics (one registry per context). */
  metrics: MetalMetrics;
  /** BMCs, power actions (through one runner, METAL_POWER_CONCURRENCY calls at once), credential sets. */
  power: MachinePowerService;
  powerRunner: PowerRunner;
  /** What the process still waits for before `/readyz` says ready (its roles starting), or that it is stopping. */
  readiness: Readiness;
  close(): Promise<void>;
}

export interface ContextOptions {
  /** Run migrations on open (default true). */
  migrate?: boolean;
  /** Replaces the real (token and session) authenticator; the first admin is then not created. */
  authenticator?: Authenticator;
  /** Replaces the IPMI/Redfish drivers (tests: the fake driver). */
  powerDriver?: (target: BmcTarget) => PowerDriver;
  /** Overrides the power runner's timing (tests: a short state watch). */
  powerRunner?: Partial<PowerRunnerOptions>;
  /** Overrides the rollout engine's timing and name (tests: a second engine, short leases). */
  rolloutEngine?: { leaseMs?: number; intervalMs?: number; owner?: string };
}

/** Opens the database, runs migrations, and wires the services. */
export async function createContext(config: Readonly<Config>, logger: Logger, options: ContextOptions = {}): Promise<AppContext> {
  const database = await openConfiguredDatabase(config);
  const notifier = new Notifier();
  let relay: SignalRelay | undefined;
  let auth: AuthService;
  const storage = new SqlStorage(database);
  try {
    if (options.migrate !== false) {
      const applied = await migrate(database);
      if (applied.length > 0) logger.info({ applied }, 'storage: migrations applied');
    }
    auth = new AuthService(storage, logger, loadSecretKey(config));
    if (!options.authenticator) await ensureFirstAdmin(auth, config, logger);
    if (storage.notifiesAcrossProcesses) relay = await startBuildSignalRelay(database.db, config.databaseUrl, notifier, logger);
  } catch (err) {
    await database.close();
    throw err;
  }
  const images = new ImageLayout(config.imagesDir);
  // The nixpkgs pin enters every configuration hash: changing METAL_NIXPKGS makes machines out of date.
  const builds = new BuildLifecycle(storage, notifier, { nixpkgs: config.nixpkgs === undefined ? '' : JSON.stringify(config.nixpkgs) });
  const metrics = new MetalMetrics({
    machines: storage.machines,
    builds: storage.builds,
    backups: { lastAt: async () => parseBackupRecord(await storage.settings.get(LAST_BACKUP_SETTING))?.at },
  });
  const countBuild = (_id: number, result: BuildResult, seconds: number | null) => metrics.buildFinished(result, seconds);
  notifier.on('build.finished', countBuild);
  notifier.on('build.boot_checked', (_id, result, seconds) => metrics.bootChecked(result, seconds));
  const machines = new MachineService(storage, notifier, images, builds);
  const powerRunner = new PowerRunner({ concurrency: config.powerConcurrency, callTimeoutMs: config.powerCallTimeoutMs, logger, ...options.powerRunner });
  const power = new MachinePowerService({
    storage,
    secrets: auth.secretBox,
    runner: powerRunner,
    driverFor: options.powerDriver ?? ((target) => createPowerDriver(target, { callTimeoutMs: config.powerCallTimeoutMs })),
    findMachine: (idOrTag) => machines.get(idOrTag),
    logger,
  });
  const machineImages = new MachineImageService(storage, notifier, images, machines);
  const rolloutEngine = new RolloutEngine({
    storage,
    notifier,
    builds,
    machineImages,
    power: { powerCycle: async (machineId, actor) => void (await power.act(`id:${machineId}`, { action: 'cycle', boot_device: 'pxe' }, actor)) },
    logger,
    owner: `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    ...options.rolloutEngine,
  });
  return {
    config,
    logger,
    storage,
    dhcpLeases: new DhcpLeaseStore(leaseDb(database.db)),
    bootFeed: { source: new SqlBootFeed(database, config.databaseUrl, logger), ordered: database.dialect === 'sqlite' },
    notifier,
    images,
    builds,
    machines,
    profiles: new ProfileService(storage, notifier, builds),
    rules: new RuleService(storage, notifier, builds),
    bulk: new BulkService(storage, notifier, machines, builds),
    machineImages,
    retention: new BuildRetention(storage, images, config.keepBuilds),
    rollouts: new RolloutService(storage, notifier, rolloutEngine),
    rolloutEngine,
    authenticator: options.authenticator ?? createAuthenticator(auth),
    auth,
    enrollGuard: createEnrollGuard(config, { store: storage.rateLimits, logger }),
    metrics,
    webhooks: new WebhookService(storage, { allowLoopback: config.webhookAllowLoopback }, auth.secretBox),
    power,
    powerRunner,
    readiness: new Readiness(),
    async close() {
      await rolloutEngine.stop();
      notifier.off('build.finished', countBuild);
      await relay?.stop();
      await storage.close();
    },
  };
}

/** What every listener of this process is built with. */
export function httpPlatform(ctx: AppContext): HttpPlatform {
  return { logger: ctx.logger, trustProxy: ctx.config.trustProxy, authenticator: ctx.authenticator, requestTimeoutMs: ctx.config.requestTimeoutMs };
}
