import type { AppContext } from '../../src/server/context.ts';

/**
 * Rows the fleet endpoints can write, counted through the stores: machines, builds, events, profiles
 * and rules. (Unlike rowCounts, it does not list tables, so other schemas on a shared PostgreSQL
 * server cannot confuse it.)
 */
export async function fleetCounts(ctx: AppContext): Promise<Record<string, number>> {
  const s = ctx.storage;
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    machines: (await s.machines.list({ limit: 1, offset: 0 })).total,
    builds: sum(await s.builds.countByStatus()),
    events: (await s.events.list({ limit: 1 })).total,
    profiles: (await s.profiles.list()).length,
    rules: (await s.rules.list()).length,
  };
}
