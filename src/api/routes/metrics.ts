import type { FastifyInstance } from 'fastify';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AppContext } from '../../server/context.ts';

/** One registry per context, so several servers in one process (tests) don't collide. */
const registries = new WeakMap<AppContext, Registry>();

/** The Prometheus registry of a context: process metrics plus machines and builds by status. */
export function metricsRegistry(ctx: AppContext): Registry {
  let registry = registries.get(ctx);
  if (registry) return registry;
  registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'metal_' });
  new Gauge({
    name: 'metal_machines',
    help: 'Machines by lifecycle status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await ctx.storage.machines.countByStatus();
      this.reset();
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'metal_builds',
    help: 'Builds by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const rows = await ctx.storage.db
        .selectFrom('builds')
        .select(['status', (eb) => eb.fn.countAll<string | number>().as('n')])
        .groupBy('status')
        .execute();
      this.reset();
      for (const r of rows) this.set({ status: r.status }, Number(r.n));
    },
  });
  registries.set(ctx, registry);
  return registry;
}

/** `GET /metrics` in the Prometheus text format (public, as product.md lists it). */
export function registerMetricsRoute(app: FastifyInstance, ctx: AppContext): void {
  const registry = metricsRegistry(ctx);
  app.get('/metrics', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
}
