import { join } from 'node:path';
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { registerAuth } from '../auth/register-auth.ts';
import { registerBuildLogRoutes } from '../api/routes/build-log-routes.ts';
import { registerBuildRoutes } from '../api/routes/builds.ts';
import { registerEnrollRoute } from '../api/routes/enroll.ts';
import { registerMachineRoutes } from '../api/routes/machines.ts';
import { createMetricsRegistry, registerMetricsRoute } from '../api/routes/metrics.ts';
import { registerPowerRoutes } from '../api/routes/power.ts';
import { PowerPoller } from '../power/power-poller.ts';
import { createBootServer, type BootServerOptions } from '../boot/boot-server.ts';
import { startBuildWorker, type BuilderOptions, type RunningBuilder } from '../builder/builder.ts';
import { registerDashboard } from '../dashboard/dashboard.tsx';
import { registerHealthRoutes } from '../http/health-routes.ts';
import { createHttpServer } from '../http/http-server.ts';
import { httpPlatform, type AppContext } from './context.ts';

/** A hook for tests to add routes to the API listener with the same platform. */
export type RouteModule = (app: FastifyInstance, ctx: AppContext) => void | Promise<void>;

/** The `api` role: REST API v1 and its OpenAPI document, health, metrics, auth and the dashboard. */
export async function buildApiServer(ctx: AppContext, modules: RouteModule[] = []): Promise<FastifyInstance> {
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
  registerAuth(app, { auth: ctx.auth, events: storage.events, machines });
  registerHealthRoutes(app, { ping: () => storage.ping(), logger: ctx.logger });
  registerMetricsRoute(app, createMetricsRegistry({ machines: storage.machines, builds: storage.builds }));
  registerEnrollRoute(app, { machines, ...(ctx.enrollGuard ? { guard: ctx.enrollGuard } : {}) });
  registerMachineRoutes(app, { machines, builds, events: storage.events });
  registerBuildRoutes(app, { builds });
  registerBuildLogRoutes(app, { builds, notifier });
  registerPowerRoutes(app, { power: ctx.power });
  await registerDashboard(app, {
    machines,
    builds,
    auth: ctx.auth,
    reads: { machines: storage.machines, builds: storage.builds, events: storage.events },
    notifier,
    images: ctx.images,
    power: ctx.power,
    bootUrl: ctx.config.bootUrl,
    logger: ctx.logger,
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
    const done = (async () => {
      const build = await storage.builds.findById(buildId);
      if (!build || build.status !== 'success') return;
      await power.rebootOnPublish(build, await storage.machines.imageBuildId(build.machine_id));
    })().catch((err: unknown) => logger.warn({ err, build: buildId }, `power: reboot on publish of build ${buildId}: ${(err as Error).message}`));
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

/** The `boot` role: what PXE clients talk to. */
export function buildBootServer(ctx: AppContext, options: BootServerOptions = {}): Promise<FastifyInstance> {
  const { storage } = ctx;
  return createBootServer(
    {
      platform: httpPlatform(ctx),
      bootUrl: ctx.config.bootUrl,
      enrollToken: ctx.config.enrollToken,
      images: ctx.images,
      targets: {
        findBootTarget: (key, value) => storage.machines.findBootTarget(key, value),
        bootFacts: (id) => storage.builds.bootFacts(id),
        touchLastSeen: (ids, now) => storage.machines.touchLastSeen(ids, now),
      },
      machines: ctx.machines,
      builds: ctx.builds,
      notifier: ctx.notifier,
      ...(ctx.enrollGuard ? { enrollGuard: ctx.enrollGuard } : {}),
      ping: () => storage.ping(),
    },
    options,
  );
}

/** The `builder` role: claims pending builds and runs them. */
export function startBuilder(ctx: AppContext, options: BuilderOptions = {}): Promise<RunningBuilder> {
  const { config } = ctx;
  return startBuildWorker(
    {
      builds: ctx.builds,
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
      },
      signalsAcrossProcesses: ctx.storage.notifiesAcrossProcesses,
    },
    options,
  );
}
