import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { BuildLifecycle } from '../core/build-lifecycle.ts';
import type { MachineService } from '../core/machine-service.ts';
import type { Notifier } from '../core/notifier.ts';
import type { BootFeed } from '../core/ports.ts';
import { registerEnrollRoute } from '../api/routes/enroll.ts';
import { registerHealthRoutes } from '../http/health-routes.ts';
import type { Readiness } from '../http/readiness.ts';
import { createHttpServer, type HttpPlatform } from '../http/http-server.ts';
import { ImageCatalog } from '../images/image-catalog.ts';
import type { ImageLayout } from '../images/image-layout.ts';
import { BootScriptResolver } from './boot-script-resolver.ts';
import { BootTable } from './boot-table.ts';
import { BootTargetReader, type BootTargetSource } from './boot-target-reader.ts';
import { registerImageKeyCheckRoute, registerImageRoutes } from './image-files.ts';
import { registerIpxeBinaryRoutes } from './ipxe-binary-routes.ts';
import { installHttpMetrics, registerMetricsRoute, type MetalMetrics, type MetricsRouteOptions } from '../metrics/metal-metrics.ts';
import { LastSeenRecorder, type LastSeenWriter } from './last-seen-recorder.ts';
import { installScriptFront } from './script-front.ts';
import { createScriptAnswers, MAX_SCRIPT_NAME_LENGTH, registerScriptRoutes } from './script-routes.ts';

/** What the boot role is built from. */
export interface BootServerDeps {
  platform: HttpPlatform;
  /** How machines reach this server, e.g. `http://10.0.0.5:8081`. */
  bootUrl: string;
  /** Put on the registration kernel line when set (METAL_ENROLL_TOKEN). */
  enrollToken: string | undefined;
  /** What the registration image does after enrolling (METAL_AFTER_ENROLL). */
  afterEnroll: 'reboot' | 'poweroff' | 'hold';
  images: ImageLayout;
  /** iPXE binaries served at `/ipxe/<file>` (METAL_IPXE_DIR). */
  ipxeDir: string;
  /** Machine and build facts for boot decisions, and where last_seen_at is written. */
  targets: BootTargetSource & LastSeenWriter;
  machines: Pick<MachineService, 'enroll'>;
  builds: Pick<BuildLifecycle, 'recordBooted' | 'bootTokenMinter' | 'rebootRequested'>;
  notifier: Notifier;
  /**
   * The change feed that keeps an in-memory decision table fresh; without it, each script request
   * reads its machine from `targets` (remembered for `machineTtlMs`).
   */
  feed?: { source: BootFeed; ordered: boolean };
  enrollGuard?: onRequestAsyncHookHandler;
  ping(): Promise<void>;
  /** What the process still waits for (`/readyz`); without it, ready once the database answers. */
  readiness?: Readiness;
  /** The process's metrics: the boot listener's requests, scripts, images and enrollments are counted there. */
  metrics?: MetalMetrics;
  /** Set when this listener also serves `GET /metrics` (a process without the api role). */
  metricsRoute?: MetricsRouteOptions;
}

/** Tuning of the boot role; the defaults suit production. */
export interface BootServerOptions {
  /** How long a look at the registration image is reused (default 2000 ms; tests use 0). */
  registrationTtlMs?: number;
  /** How often collected last_seen_at updates are written (default 1500 ms). */
  lastSeenIntervalMs?: number;
  /**
   * How long a machine lookup is reused (default 1000 ms). Changes in this process are seen at
   * once; changes by another process within this time.
   */
  machineTtlMs?: number;
  /**
   * Whether script requests are answered by the lean front (`script-front.ts`) before Fastify sees
   * them (default true; tests compare both ways).
   */
  scriptFront?: boolean;
}

/** How far back a catch-up re-reads on a feed whose versions can commit out of order (PostgreSQL). */
const FEED_LAG_MS = 2000;

/** The `boot` role: what PXE clients talk to. No authentication. */
export async function createBootServer(deps: BootServerDeps, options: BootServerOptions = {}): Promise<FastifyInstance> {
  const logger = deps.platform.logger.child({ role: 'boot' });
  // Per-request logs at info would cost more than serving the script during a boot storm.
  const app = createHttpServer(deps.platform, { loggerInstance: logger.child({}, { level: 'warn' }), routerOptions: { maxParamLength: MAX_SCRIPT_NAME_LENGTH } });
  const catalog = new ImageCatalog(deps.images, { registrationTtlMs: options.registrationTtlMs });
  let reader: Pick<BootTable, 'findMachine' | 'buildFacts' | 'buildIdOfImageKey'>;
  if (deps.feed) {
    const table = new BootTable(deps.feed.source, deps.notifier, logger, { lagMs: deps.feed.ordered ? 0 : FEED_LAG_MS });
    await table.start();
    logger.info({ machines: table.size }, 'boot: decision table loaded');
    app.addHook('onClose', () => table.close());
    reader = table;
  } else {
    const cached = new BootTargetReader(deps.targets, options.machineTtlMs ?? 1000);
    const forget = () => cached.forgetMachines();
    deps.notifier.on('machine.updated', forget);
    app.addHook('onClose', async () => {
      deps.notifier.off('machine.updated', forget);
    });
    reader = cached;
  }
  // Builds machines boot now are in the table; any other successful build's files (older images the
  // dashboard links to) are found by their key in the database, each key read once.
  const keys = deps.feed ? new BootTargetReader(deps.targets, 0) : undefined;
  const buildIdOfImageKey = async (key: string) => (await reader.buildIdOfImageKey(key)) ?? (await keys?.buildIdOfImageKey(key));
  const resolver = new BootScriptResolver(reader, catalog, { bootUrl: deps.bootUrl, enrollToken: deps.enrollToken, afterEnroll: deps.afterEnroll }, logger, deps.builds);
  const lastSeen = new LastSeenRecorder(deps.targets, logger, options.lastSeenIntervalMs);
  app.addHook('onClose', () => lastSeen.flush());

  const { metrics } = deps;
  if (metrics) installHttpMetrics(app, metrics, 'boot');
  if (metrics && deps.metricsRoute) registerMetricsRoute(app, metrics, deps.metricsRoute);
  registerHealthRoutes(app, { ping: deps.ping, logger, ...(deps.readiness ? { readiness: deps.readiness } : {}) });
  registerEnrollRoute(app, { machines: deps.machines, ...(deps.enrollGuard ? { guard: deps.enrollGuard } : {}), ...(metrics ? { metrics } : {}) });
  const scriptOptions = { bootUrl: deps.bootUrl, resolver, lastSeen, builds: deps.builds, logger, ...(metrics ? { metrics } : {}) };
  const answers = createScriptAnswers(scriptOptions);
  registerScriptRoutes(app, scriptOptions, answers);
  // Script requests are answered before Fastify sees them (same answers, headers and metrics); the
  // rest of the listener stays Fastify's, on the same port.
  if (options.scriptFront !== false) {
    const front = installScriptFront(app.server, { answers, logger, ...(metrics ? { recordRequest: metrics.httpRequestRecorder('boot') } : {}) });
    app.addHook('preClose', (done) => {
      front.close();
      done();
    });
  }
  registerImageRoutes(app, deps.images.root, logger, buildIdOfImageKey, metrics);
  registerImageKeyCheckRoute(app, buildIdOfImageKey);
  registerIpxeBinaryRoutes(app, { dir: deps.ipxeDir, logger });

  const registration = await catalog.registration();
  if (!registration.ok) {
    logger.warn(
      { dir: deps.images.registrationDir, reason: registration.reason },
      `boot: the registration image is not usable (${registration.reason}); unknown machines will wait until bzImage, initrd and boot.json are in ${deps.images.registrationDir} (build them with "metal image build-registration" on a Nix host, or "metal lab image" from Debian packages)`,
    );
  }
  return app;
}
