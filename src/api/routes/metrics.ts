import type { FastifyInstance } from 'fastify';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** What the metrics read at each scrape. */
export interface MetricsSources {
  machines: { countByStatus(): Promise<Record<string, number>> };
  builds: { countByStatus(): Promise<Record<string, number>> };
}

/** A Prometheus registry of process metrics plus machines and builds by status (one per server). */
export function createMetricsRegistry(sources: MetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'metal_' });
  const byStatus = (name: string, help: string, read: () => Promise<Record<string, number>>) =>
    new Gauge({
      name,
      help,
      labelNames: ['status'],
      registers: [registry],
      async collect() {
        const counts = await read();
        this.reset();
        for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
  byStatus('metal_machines', 'Machines by lifecycle status', () => sources.machines.countByStatus());
  byStatus('metal_builds', 'Builds by status', () => sources.builds.countByStatus());
  return registry;
}

/** `GET /metrics` in the Prometheus text format (public, as product.md lists it). */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
}
