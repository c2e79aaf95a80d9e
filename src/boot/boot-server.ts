import type { FastifyInstance } from 'fastify';
import { createHttpServer } from '../api/http-server.ts';
import { registerEnrollRoute } from '../api/routes/enroll.ts';
import { registerHealthRoutes } from '../api/routes/health.ts';
import type { AppContext } from '../server/context.ts';
import { BootScriptResolver } from './boot-script-resolver.ts';
import { BootTargetReader } from './boot-target-reader.ts';
import { ImageCatalog } from './image-catalog.ts';
import { registerImageRoutes } from './image-files.ts';
import { registerIpxeBinaryRoutes } from './ipxe-binary-routes.ts';
import { LastSeenRecorder } from './last-seen-recorder.ts';
import { registerScriptRoutes } from './script-routes.ts';

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
}

/** The `boot` role: what PXE clients talk to. No authentication. */
export async function buildBootServer(ctx: AppContext, options: BootServerOptions = {}): Promise<FastifyInstance> {
  // Per-request logs at info would cost more than serving the script during a boot storm.
  // Long enough for any serial a vendor puts in DMI: an invalid one still gets a script, by MAC or UUID.
  const app = createHttpServer(ctx, { loggerInstance: ctx.logger.child({ role: 'boot' }, { level: 'warn' }), routerOptions: { maxParamLength: 1024 } });
  const logger = ctx.logger.child({ role: 'boot' });
  const catalog = new ImageCatalog(ctx.images, { registrationTtlMs: options.registrationTtlMs });
  const reader = new BootTargetReader(ctx.storage.db, options.machineTtlMs ?? 1000);
  const forget = () => reader.forgetMachines();
  ctx.notifier.on('machine.updated', forget);
  app.addHook('onClose', async () => {
    ctx.notifier.off('machine.updated', forget);
  });
  const resolver = new BootScriptResolver(reader, catalog, ctx.config, logger);
  const lastSeen = new LastSeenRecorder(ctx.storage.machines, logger, options.lastSeenIntervalMs);
  app.addHook('onClose', () => lastSeen.flush());

  registerHealthRoutes(app, ctx);
  registerEnrollRoute(app, ctx);
  registerScriptRoutes(app, ctx, resolver, lastSeen, logger);
  registerImageRoutes(app, ctx.config.imagesDir, logger);
  registerIpxeBinaryRoutes(app, { dir: ctx.config.ipxeDir, logger });

  const registration = await catalog.registration();
  if (!registration.ok) {
    logger.warn(
      { dir: ctx.images.registrationDir, reason: registration.reason },
      `boot: the registration image is not usable (${registration.reason}); unknown machines will wait until bzImage, initrd and boot.json are in ${ctx.images.registrationDir} (build them with "metal image build-registration" on a Nix host, or "metal lab image" from Debian packages)`,
    );
  }
  return app;
}
