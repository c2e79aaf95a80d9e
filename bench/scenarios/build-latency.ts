import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/config.ts';
import { SYSTEM_ACTOR } from '../../src/core/types.ts';
import { startBuilder } from '../../src/builder/builder.ts';
import { createContext, type AppContext } from '../../src/server/context.ts';
import { createLogger } from '../../src/server/logger.ts';
import { enrollmentPayload } from '../../src/testing/context.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseLatencies } from '../latency.ts';
import { startMetal } from '../metal-process.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';

const STANDIN_ENTRY = fileURLToPath(new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url));
/** How long a build may stay pending before the builder counts as absent. */
const CLAIM_GIVE_UP_MS = 15_000;
const FINISH_GIVE_UP_MS = 180_000;

/**
 * Time from a build request to a builder claiming it (builds.started_at - created_at), with the builder
 * in the requesting process (woken in-process) and in a separate `metal builder` process.
 */
export async function benchBuildLatency(bench: BenchContext): Promise<ScenarioResult> {
  const n = bench.sizes.builds;
  const result = newScenario('build-latency', 'Build latency: request to claim', {
    'builds per case': n,
    'Nix entry': 'src/builder/fixtures/standin-ok.nix',
    'builds run': 'one after another, builder idle at each request',
  });
  for (const kind of await bench.databases()) {
    for (const placement of ['same process', 'separate process'] as const) {
      const database = kind.fresh();
      const dataDir = bench.tempDir('data');
      const env = {
        METAL_DATA_DIR: dataDir,
        METAL_DATABASE_URL: database.url,
        METAL_NIX_ENTRY: STANDIN_ENTRY,
        METAL_BOOT_URL: 'http://127.0.0.1:8081',
        METAL_LISTEN: '127.0.0.1:0',
        METAL_BOOT_LISTEN: '127.0.0.1:0',
        METAL_LOG_LEVEL: 'warn',
      };
      const ctx = await createContext(loadConfig(env), createLogger('warn'));
      const stops: Array<() => Promise<void>> = [];
      try {
        if (placement === 'same process') {
          const builder = await startBuilder(ctx);
          stops.push(() => builder.stop());
        } else {
          const child = await startMetal({ args: ['builder'], env: { ...env, METAL_LOG_LEVEL: 'info' } });
          stops.push(() => child.stop());
        }
        const measured = await requestBuilds(ctx, n, `${kind.name.slice(0, 2)}${placement === 'same process' ? 's' : 'p'}`);
        const label = `builder in the ${placement} (${kind.name})`;
        if (measured.unclaimed) {
          result.rows.push({ label, metrics: { note: measured.unclaimed } });
          result.bars.push({ bar: `build claimed within 1 s, ${placement} (${kind.name})`, target: '< 1 s', measured: measured.unclaimed, met: false });
          continue;
        }
        const lat = summariseLatencies(measured.claimMs);
        result.rows.push({
          label,
          metrics: { 'claim p50 ms': round(lat.p50), 'claim max ms': round(lat.max), 'build p50 s': round(summariseLatencies(measured.buildMs).p50 / 1000), builds: lat.count, failed: measured.failed },
        });
        result.bars.push({
          bar: `build claimed within 1 s, ${placement} (${kind.name})`,
          target: '< 1000 ms (worst of all builds)',
          measured: `max ${round(lat.max)} ms`,
          met: lat.max < 1000,
        });
      } finally {
        for (const stop of stops) await stop();
        await ctx.close();
        await database.cleanup();
      }
    }
  }
  return result;
}

/** Requests `n` builds one after another (each on its own machine) and reads when each was claimed and finished. */
async function requestBuilds(ctx: AppContext, n: number, prefix: string) {
  const claimMs: number[] = [];
  const buildMs: number[] = [];
  let failed = 0;
  for (let i = 1; i <= n; i++) {
    const tag = `LAT${prefix.toUpperCase()}${String(i).padStart(4, '0')}`;
    await ctx.machines.enroll(enrollmentPayload(tag), { kind: 'machine', name: tag });
    await ctx.machines.update(tag, { hostname: `lat-${prefix}-${i}`, nixos_config: `{ ... }:\n{\n  networking.hostName = "lat-${prefix}-${i}";\n}\n` }, SYSTEM_ACTOR);
    const build = await ctx.machines.requestBuild(tag, SYSTEM_ACTOR);
    const claimed = await waitFor(ctx, build.id, (b) => b.started_at !== null, CLAIM_GIVE_UP_MS);
    if (!claimed) return { claimMs, buildMs, failed, unclaimed: `build ${build.id} still pending after ${CLAIM_GIVE_UP_MS / 1000} s: no builder claimed it` };
    const done = await waitFor(ctx, build.id, (b) => b.completed_at !== null, FINISH_GIVE_UP_MS);
    if (!done) return { claimMs, buildMs, failed, unclaimed: `build ${build.id} did not finish within ${FINISH_GIVE_UP_MS / 1000} s` };
    if (done.status !== 'success') failed++;
    claimMs.push(Date.parse(done.started_at!) - Date.parse(done.created_at));
    buildMs.push(Date.parse(done.completed_at!) - Date.parse(done.started_at!));
  }
  return { claimMs, buildMs, failed, unclaimed: undefined };
}

/** Re-reads the build every 20 ms until `ok` or the deadline; the latency itself comes from its timestamps. */
async function waitFor(ctx: AppContext, id: number, ok: (b: { started_at: string | null; completed_at: string | null; status: string; created_at: string }) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const b = await ctx.storage.builds.findById(id);
    if (b && ok(b)) return b;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}
