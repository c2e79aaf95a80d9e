import type { FastifyInstance } from 'fastify';
import type { Config, Listen } from '../config/config.ts';
import { redactUrl } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { createContext, type AppContext } from './context.ts';
import { buildApiServer, buildBootServer, startBuilder, startPowerControl } from './roles.ts';

export const ALL_ROLES = ['api', 'boot', 'builder'] as const;
export type RoleName = (typeof ALL_ROLES)[number];

/** A started process: its context, listeners, and how to stop it gracefully. */
export interface RunningServer {
  ctx: AppContext;
  api?: FastifyInstance;
  boot?: FastifyInstance;
  /** Actual addresses bound (useful with port 0). */
  addresses: Partial<Record<RoleName, string>>;
  stop(): Promise<void>;
}

export function parseRoles(value: string): RoleName[] {
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  if (roles.length === 0) throw new Error('serve: --roles needs at least one of api, boot, builder');
  for (const r of roles) {
    if (!(ALL_ROLES as readonly string[]).includes(r)) {
      throw new Error(`serve: --roles: unknown role ${JSON.stringify(r)}; expected api, boot or builder`);
    }
  }
  return [...new Set(roles)] as RoleName[];
}

/** Starts the given roles in this process against one database and image directory. */
export async function startServer(config: Readonly<Config>, logger: Logger, roles: readonly RoleName[]): Promise<RunningServer> {
  logger.info({ roles, database: redactUrl(config.databaseUrl), imagesDir: config.imagesDir, bootUrl: config.bootUrl }, 'metal: starting');
  const ctx = await createContext(config, logger);
  const stops: Array<() => Promise<void>> = [];
  const running: RunningServer = {
    ctx,
    addresses: {},
    async stop() {
      for (const stop of stops.reverse()) await stop().catch((err) => logger.error({ err }, 'metal: error while stopping'));
      await ctx.close();
    },
  };
  try {
    if (roles.includes('api')) {
      running.api = await buildApiServer(ctx);
      running.addresses.api = await listen(running.api, config.listen, 'METAL_LISTEN');
      stops.push(() => running.api!.close());
      const powerControl = startPowerControl(ctx);
      stops.push(() => powerControl.stop());
    }
    if (roles.includes('boot')) {
      running.boot = await buildBootServer(ctx);
      running.addresses.boot = await listen(running.boot, config.bootListen, 'METAL_BOOT_LISTEN');
      stops.push(() => running.boot!.close());
    }
    if (roles.includes('builder')) {
      const builder = await startBuilder(ctx);
      stops.push(() => builder.stop());
    }
  } catch (err) {
    await running.stop();
    throw err;
  }
  logger.info({ addresses: running.addresses }, 'metal: ready');
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
