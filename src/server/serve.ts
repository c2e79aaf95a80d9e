import type { FastifyInstance } from 'fastify';
import type { Config, Listen } from '../config/config.ts';
import { redactUrl } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { BuilderCannotStart } from '../builder/builder-cannot-start.ts';
import { startPxeServices } from '../pxe/pxe-services.ts';
import { createContext, type AppContext } from './context.ts';
import { followNixpkgsPin } from '../core/nixpkgs-pin.ts';
import { buildApiServer, buildBootServer, buildMetricsServer, startBuilder, startPowerControl, startWebhookDelivery } from './roles.ts';
import { servedIpxeDir } from './secure-boot-start.ts';

/** `pxe` (TFTP + proxyDHCP) runs only when asked for: it needs root for ports 67 and 69. */
export const ALL_ROLES = ['api', 'boot', 'builder', 'pxe'] as const;
export type RoleName = (typeof ALL_ROLES)[number];
/** How `/readyz` names each role while it starts. */
const ROLE_PARTS: Record<RoleName, string> = { api: 'API listener', boot: 'boot listener', builder: 'builder', pxe: 'PXE services' };
const METRICS_PART = 'metrics listener';

/** A started process: its context, listeners, and how to stop it gracefully. */
export interface RunningServer {
  ctx: AppContext;
  api?: FastifyInstance;
  boot?: FastifyInstance;
  /** The METAL_METRICS_LISTEN listener, when configured. */
  metrics?: FastifyInstance;
  /** Actual addresses bound (useful with port 0). */
  addresses: Partial<Record<RoleName | 'metrics', string>>;
  stop(): Promise<void>;
}

export function parseRoles(value: string): RoleName[] {
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  if (roles.length === 0) throw new Error('serve: --roles needs at least one of api, boot, builder, pxe');
  for (const r of roles) {
    if (!(ALL_ROLES as readonly string[]).includes(r)) {
      throw new Error(`serve: --roles: unknown role ${JSON.stringify(r)}; expected api, boot, builder or pxe`);
    }
  }
  return [...new Set(roles)] as RoleName[];
}

/** Starts the given roles in this process against one database and image directory. */
export async function startServer(
  config: Readonly<Config>,
  logger: Logger,
  roles: readonly RoleName[],
  /** `migrate`: run migrations first (default true); `announce`: log `metal: ready` (default true). */
  options: { migrate?: boolean; announce?: boolean } = {},
): Promise<RunningServer> {
  logger.info({ roles, database: redactUrl(config.databaseUrl), imagesDir: config.imagesDir, bootUrl: config.bootUrl }, 'metal: starting');
  const ctx = await createContext(config, logger, { migrate: options.migrate ?? true });
  const stops: Array<() => Promise<void>> = [];
  // `/readyz` on any of this process's listeners says ready only once every role is up.
  const { readiness } = ctx;
  readiness.wait(...roles.map((role) => ROLE_PARTS[role]), ...(config.metricsListen ? [METRICS_PART] : []));
  const running: RunningServer = {
    ctx,
    addresses: {},
    async stop() {
      readiness.stop();
      for (const stop of stops.reverse()) await stop().catch((err) => logger.error({ err }, 'metal: error while stopping'));
      await ctx.close();
    },
  };
  try {
    if (roles.includes('api')) {
      // A new METAL_NIXPKGS changes what every machine would be built from: its desired hash follows.
      const pin = await followNixpkgsPin(ctx.storage, ctx.builds.nixpkgs);
      // A first start records the pin with nothing to say; a change of pin is worth a line.
      if (pin && (pin.previous !== undefined || pin.changed > 0)) {
        logger.info({ machines: pin.changed }, `metal: the nixpkgs pin changed; ${pin.changed} machines' desired configuration changed with it`);
      }
      running.api = await buildApiServer(ctx);
      running.addresses.api = await listen(running.api, config.listen, 'METAL_LISTEN');
      stops.push(() => running.api!.close());
      const webhooks = startWebhookDelivery(ctx);
      stops.push(() => webhooks.stop());
      const powerControl = startPowerControl(ctx);
      stops.push(() => powerControl.stop());
      // Rollouts are driven by every api process; leases keep each rollout to one of them.
      ctx.rolloutEngine.start();
      stops.push(() => ctx.rolloutEngine.stop());
      readiness.up(ROLE_PARTS.api);
    }
    if (roles.includes('boot')) {
      // /metrics goes where Prometheus can reach it: its own listener, else the API, else the boot listener.
      running.boot = await buildBootServer(ctx, {}, !config.metricsListen && !roles.includes('api'));
      running.addresses.boot = await listen(running.boot, config.bootListen, 'METAL_BOOT_LISTEN');
      stops.push(() => running.boot!.close());
      readiness.up(ROLE_PARTS.boot);
    }
    if (config.metricsListen) {
      running.metrics = buildMetricsServer(ctx);
      running.addresses.metrics = await listen(running.metrics, config.metricsListen, 'METAL_METRICS_LISTEN');
      stops.push(() => running.metrics!.close());
      readiness.up(METRICS_PART);
    }
    if (roles.includes('builder')) {
      try {
        const builder = await startBuilder(ctx);
        stops.push(() => builder.stop());
      } catch (err) {
        // With other roles (`metal serve`), the rest of the system still comes up, saying why nothing
        // will build; `metal builder` alone refuses to start.
        if (!(err instanceof BuilderCannotStart) || roles.length === 1) throw err;
        logger.error(`${err.message}. The other roles run; builds stay pending until a builder can take them.`);
      }
      readiness.up(ROLE_PARTS.builder);
    }
    if (roles.includes('pxe')) {
      const pxe = await startPxeServices({
        ipxeDir: await servedIpxeDir(config, logger, 'pxe'),
        tftpListen: config.tftpListen,
        proxyDhcpInterface: config.proxyDhcpInterface,
        bootUrl: config.bootUrl,
        dhcpRange: config.dhcpRange,
        leases: config.dhcpRange ? ctx.dhcpLeases : undefined,
        logger,
      });
      running.addresses.pxe = `tftp://${pxe.tftp.address.host}:${pxe.tftp.address.port}`;
      stops.push(() => pxe.stop());
      readiness.up(ROLE_PARTS.pxe);
    }
  } catch (err) {
    await running.stop();
    throw err;
  }
  logger.info({ addresses: running.addresses }, options.announce === false ? 'metal: worker ready' : 'metal: ready');
  return running;
}

async function listen(app: FastifyInstance, where: Listen, key: string): Promise<string> {
  try {
    return await app.listen({ host: where.host, port: where.port });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new Error(`${key}: ${where.host}:${where.port} is already in use; pick another address with ${key}`);
    if (code === 'EACCES') throw new Error(`${key}: not allowed to listen on ${where.host}:${where.port}`);
    if (code === 'EADDRNOTAVAIL') throw new Error(`${key}: ${where.host} is not an address of this host`);
    throw err;
  }
}
