import { join } from 'node:path';
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { registerAuth } from '../auth/register-auth.ts';
import { CredentialStreamGuard, type StreamGuardOptions } from '../auth/stream-guard.ts';
import { registerBuildLogRoutes } from '../api/routes/build-log-routes.ts';
import { registerBuildRoutes } from '../api/routes/builds.ts';
import { builderStatuses } from '../core/builder-presence.ts';
import { registerEnrollRoute } from '../api/routes/enroll.ts';
import { registerMachineRoutes } from '../api/routes/machines.ts';
import { registerRollbackRoute } from '../api/routes/rollback.ts';
import { registerRolloutRoutes } from '../api/routes/rollouts.ts';
import { registerWebhookRoutes } from '../api/routes/webhooks.ts';
import { startWebhookWorker, type DeliverySettings, type RunningWebhookWorker } from '../webhooks/delivery-worker.ts';
import { registerPowerRoutes } from '../api/routes/power.ts';
import { registerBulkRoutes } from '../api/routes/bulk.ts';
import { registerProfileRoutes } from '../api/routes/profiles.ts';
import { registerRuleRoutes } from '../api/routes/rules.ts';
import { PowerPoller } from '../power/power-poller.ts';
import { createBootServer, type BootServerOptions } from '../boot/boot-server.ts';
import { startBuildWorker, type BuilderOptions, type RunningBuilder } from '../builder/builder.ts';
import { registerDashboard } from '../dashboard/dashboard.tsx';
import { registerHealthRoutes } from '../http/health-routes.ts';
import { createHttpServer } from '../http/http-server.ts';
import { installHttpMetrics, registerMetricsRoute } from '../metrics/metal-metrics.ts';
import { httpPlatform, type AppContext } from './context.ts';
import { servedIpxeDir, warnUnlessRegistrationSigned } from './secure-boot-start.ts';

/** A hook for tests to add routes to the API listener with the same platform. */
export type RouteModule = (app: FastifyInstance, ctx: AppContext) => void | Promise<void>;

/** What tests may tune on the API listener. */
export interface ApiServerOptions {
  /** Open log streams per user and how often their credentials are checked again (defaults 8 and 30 s). */
  streams?: StreamGuardOptions;
}

/** The `api` role: REST API v1 and its OpenAPI document, health, metrics, auth and the dashboard. */
export async function buildApiServer(ctx: AppContext, modules: RouteModule[] = [], options: ApiServerOptions = {}): Promise<FastifyInstance> {
  const app = createHttpServer(httpPlatform(ctx));
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Metal Enrollment API',
        version: '1',
        description: 'Bare-metal enrollment, configuration and NixOS image builds. Authenticate with `Authorization: Bearer <token>`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  const { storage, machines, builds, notifier } = ctx;
  // One guard for the API's and the dashboard's streams, so the per-user cap counts both together.
  const streamGuard = new CredentialStreamGuard(ctx.auth, ctx.logger, options.streams);
  registerAuth(app, { auth: ctx.auth, events: storage.events, machines });
  registerHealthRoutes(app, { ping: () => storage.ping(), logger: ctx.logger, readiness: ctx.readiness });
  installHttpMetrics(app, ctx.metrics, 'api');
  // With METAL_METRICS_LISTEN, /metrics moves to its own listener (buildMetricsServer).
  if (!ctx.config.metricsListen) registerMetricsRoute(app, ctx.metrics, { token: ctx.config.metricsToken });
  registerEnrollRoute(app, { machines, ...(ctx.enrollGuard ? { guard: ctx.enrollGuard } : {}), metrics: ctx.metrics });
  registerMachineRoutes(app, { machines, builds, events: storage.events, profiles: ctx.profiles });
  registerRollbackRoute(app, { machineImages: ctx.machineImages });
  registerRolloutRoutes(app, { rollouts: ctx.rollouts });
  registerBuildRoutes(app, { builds, builders: () => builderStatuses(ctx.storage.builderPresence) });
  registerBuildLogRoutes(app, { builds, notifier, streamGuard });
  registerWebhookRoutes(app, { webhooks: ctx.webhooks });
  registerPowerRoutes(app, { power: ctx.power });
  registerBulkRoutes(app, { bulk: ctx.bulk, power: ctx.power });
  registerProfileRoutes(app, { profiles: ctx.profiles });
  registerRuleRoutes(app, { rules: ctx.rules });
  await registerDashboard(app, {
    machines,
    builds,
    auth: ctx.auth,
    reads: { machines: storage.machines, builds: storage.builds, events: storage.events, settings: storage.settings, builderPresence: storage.builderPresence },
    notifier,
    streamGuard,
    images: ctx.images,
    power: ctx.power,
    bootUrl: ctx.config.bootUrl,
    logger: ctx.logger,
    webhooks: ctx.webhooks,
    fleet: { profiles: ctx.profiles, rules: ctx.rules, bulk: ctx.bulk, machines },
    machineImages: ctx.machineImages,
    rollouts: ctx.rollouts,
  });
  for (const module of modules) await module(app, ctx);
  app.get('/api/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
  return app;
}

/** Background power work of the `api` role: reboot-on-publish, and the poller that keeps power state fresh. */
export interface RunningPowerControl {
  /** Reboots started by publications and not finished yet (tests wait for them). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the `api` role's power work: when a build publishes (a signal from this process or, on
 * PostgreSQL, from a builder elsewhere), its machine is rebooted into it if it asks for that; and, unless
 * METAL_POWER_POLL_INTERVAL is 0, every BMC's state is read once per interval.
 */
export function startPowerControl(ctx: AppContext): RunningPowerControl {
  const { storage, power, notifier, logger } = ctx;
  const inFlight = new Set<Promise<unknown>>();
  const onBuildUpdated = (buildId: number) => {
    let tag: string | undefined;
    const done = (async () => {
      const build = await storage.builds.findRecord(buildId);
      tag = build?.service_tag;
      if (!build || build.status !== 'success') return;
      await power.rebootOnPublish(build, await storage.machines.imageBuildId(build.machine_id));
    })().catch((err: unknown) =>
      logger.warn({ err, build: buildId, service_tag: tag ?? null }, `power: reboot on publish of build ${buildId}${tag ? ` of ${tag}` : ''}: ${(err as Error).message}`),
    );
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };
  notifier.on('build.updated', onBuildUpdated);
  const poller = ctx.config.powerPollIntervalMs > 0 ? new PowerPoller(ctx.powerRunner, power.pollerPorts(), { intervalMs: ctx.config.powerPollIntervalMs, logger }) : undefined;
  poller?.start();
  const idle = async () => {
    while (inFlight.size > 0) await Promise.all(inFlight);
  };
  return {
    idle,
    async stop() {
      notifier.off('build.updated', onBuildUpdated);
      await poller?.stop();
      await idle();
    },
  };
}

/**
 * The `boot` role: what PXE clients talk to. With `serveMetrics` (a process without the api role and
 * without METAL_METRICS_LISTEN) it also answers `GET /metrics`.
 */
export async function buildBootServer(ctx: AppContext, options: BootServerOptions = {}, serveMetrics = false): Promise<FastifyInstance> {
  const { storage } = ctx;
  const ipxeDir = await servedIpxeDir(ctx.config, ctx.logger, 'boot');
  await warnUnlessRegistrationSigned(ctx.config, ctx.logger);
  return createBootServer(
    {
      platform: httpPlatform(ctx),
      bootUrl: ctx.config.bootUrl,
      enrollToken: ctx.config.enrollToken,
      afterEnroll: ctx.config.afterEnroll,
      images: ctx.images,
      ipxeDir,
      targets: {
        findBootTarget: (key, value) => storage.machines.findBootTarget(key, value),
        bootFacts: (id) => storage.builds.bootFacts(id),
        findIdByImageKey: (key) => storage.builds.findIdByImageKey(key),
        touchLastSeen: (ids, now) => storage.machines.touchLastSeen(ids, now),
      },
      machines: ctx.machines,
      builds: ctx.builds,
      notifier: ctx.notifier,
      feed: ctx.bootFeed,
      ...(ctx.enrollGuard ? { enrollGuard: ctx.enrollGuard } : {}),
      ping: () => storage.ping(),
      readiness: ctx.readiness,
      metrics: ctx.metrics,
      ...(serveMetrics ? { metricsRoute: { token: ctx.config.metricsToken } } : {}),
    },
    options,
  );
}

/** The METAL_METRICS_LISTEN listener: `GET /metrics` (and health) only, for any mix of roles. */
export function buildMetricsServer(ctx: AppContext): FastifyInstance {
  const app = createHttpServer(httpPlatform(ctx), { loggerInstance: ctx.logger.child({ role: 'metrics' }, { level: 'warn' }) });
  installHttpMetrics(app, ctx.metrics, 'metrics');
  registerMetricsRoute(app, ctx.metrics, { token: ctx.config.metricsToken });
  registerHealthRoutes(app, { ping: () => ctx.storage.ping(), logger: ctx.logger, readiness: ctx.readiness });
  return app;
}

/** Delivers the webhook outbox (started with the api role). */
export function startWebhookDelivery(ctx: AppContext, settings: Omit<DeliverySettings, 'allowLoopback'> = {}): RunningWebhookWorker {
  return startWebhookWorker({
    storage: ctx.storage,
    sealer: ctx.auth.secretBox,
    logger: ctx.logger,
    settings: { ...settings, allowLoopback: ctx.config.webhookAllowLoopback },
    metrics: ctx.metrics,
  });
}

/** The `builder` role: claims pending builds and runs them. */
export function startBuilder(ctx: AppContext, options: BuilderOptions = {}): Promise<RunningBuilder> {
  const { config } = ctx;
  return startBuildWorker(
    {
      builds: ctx.builds,
      presence: ctx.storage.builderPresence,
      notifier: ctx.notifier,
      images: ctx.images,
      logger: ctx.logger,
      settings: {
        nixEntry: config.nixEntry,
        buildConcurrency: config.buildConcurrency,
        buildLeaseMs: config.buildLeaseMs,
        buildTimeoutSeconds: config.buildTimeoutSeconds,
        workRoot: join(config.dataDir, 'builds-work'),
        bootUrl: config.bootUrl,
        nixpkgs: config.nixpkgs,
        consoles: config.consoles,
        buildUnsandboxed: config.buildUnsandboxed,
        bootCheck: config.buildBootCheck,
        bootCheckTimeoutMs: config.buildBootCheckTimeoutMs,
        secureBoot: config.secureBoot,
      },
      signalsAcrossProcesses: ctx.storage.notifiesAcrossProcesses,
      retention: ctx.retention,
    },
    options,
  );
}
