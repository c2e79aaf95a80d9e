import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { FLEET_TAG_PREFIX, FLEET_TAG_WIDTH, seedFleet, type Fleet } from '../fleet.ts';
import { startMetal } from '../metal-process.ts';
import { startNginx, type NginxProcess } from '../nginx-process.ts';
import { measureCpu } from '../process-cpu.ts';
import { newScenario, round, type BarCheck, type ScenarioResult } from '../result.ts';
import { errorCount, pathGenerator, runWrk, type LoadResult } from '../wrk.ts';

const BOOT_URL = 'http://127.0.0.1:8081';
/**
 * Pause between one client's asks in the paced load: 500 clients every 250 ms is 2,000 requests a
 * second, what 10,000 machines held by a running build produce when each chains its script every 5 s.
 */
const PAUSE_MS = 250;

/** Boot processes measured: one, and `--workers 2` (one per core on the reference machine). */
const WORKER_COUNTS = [1, 2] as const;
/** Saturated throughput each process count must reach, as a share of one nginx worker's. */
const THROUGHPUT_BARS: Record<(typeof WORKER_COUNTS)[number], number> = { 1: 0.6, 2: 1.0 };

/**
 * Boot storm: many clients ask for random machines' iPXE scripts from a fleet in which half boot their
 * own image and half are held, from `metal boot` with one process and with two; beside nginx (one
 * worker) serving one static script of the same size, measured before and after them.
 */
export async function benchBootScripts(bench: BenchContext): Promise<ScenarioResult> {
  const s = bench.sizes;
  const result = newScenario('boot-scripts', 'Boot scripts: random machines, many clients at once', {
    machines: s.machines,
    clients: s.scriptClients,
    seconds: s.loadSeconds,
    'wrk threads': 1,
    'paced: pause between one client’s asks, ms': PAUSE_MS,
    'paced seconds (clients at independent phases)': s.pacedSeconds,
    'boot processes': WORKER_COUNTS.join(' and '),
  });
  const sampleScript = { text: undefined as string | undefined };
  const saturatedRuns: Array<{ bar: BarCheck; ours: LoadResult; share: number; adjacent: [LoadResult, LoadResult] }> = [];
  const pacedRuns: Array<{ bar: BarCheck; ours: LoadResult }> = [];

  // nginx before and after: the machine is shared, so the reference is the mean of both.
  const nginxRoot = bench.tempDir('nginx-root');
  mkdirSync(join(nginxRoot, 'nixos', 'machines'), { recursive: true });
  const nginxRuns: Array<{ paced: LoadResult; lockstep: LoadResult; saturated: LoadResult }> = [];
  // One nginx serves the reference all along: measured in full before and after everything, and
  // saturated right before and right after each saturated run of ours (the machine's speed drifts by
  // up to a fifth over the minutes a run takes, so each ratio is to the nginx runs beside it).
  let nginx: NginxProcess | undefined;
  const nginxUrl = async (): Promise<{ url: string; pid: number }> => {
    if (!nginx) {
      writeFileSync(join(nginxRoot, 'nixos', 'machines', 'script.ipxe'), sampleScript.text ?? '#!ipxe\n'.padEnd(600, '#'));
      nginx = await startNginx({ prefix: bench.tempDir('nginx'), root: nginxRoot, sendfile: false });
    }
    return { url: `${nginx.url}/nixos/machines/script.ipxe`, pid: nginx.pid };
  };
  const measureNginx = async (when: string) => {
    const { url, pid } = await nginxUrl();
    const runs = await loadBoth(bench, url, undefined, pid);
    result.rows.push(
      row(`nginx, 1 worker, one static script, paced (${when})`, runs.paced),
      row(`nginx, 1 worker, one static script, paced in lockstep (${when})`, runs.lockstep),
      row(`nginx, 1 worker, one static script, saturated (${when})`, runs.saturated),
    );
    nginxRuns.push(runs);
  };
  const nginxSaturated = async (when: string): Promise<LoadResult> => {
    const { url, pid } = await nginxUrl();
    const run = await measuredLoad(pid, { url, connections: s.scriptClients, threads: 1, workDir: bench.tempDir('wrk'), durationSeconds: s.loadSeconds });
    result.rows.push(row(`nginx, 1 worker, one static script, saturated (${when})`, run));
    return run;
  };
  for (const kind of await bench.databases()) {
    const database = kind.fresh();
    const imagesDir = bench.tempDir('images');
    const db = await openDatabase(database.url);
    let fleet: Fleet;
    try {
      await migrate(db);
      fleet = await seedFleet(db, { count: s.machines, imagesDir });
    } finally {
      await db.close();
    }
    try {
      for (const workers of WORKER_COUNTS) {
        // Profiles are read from one process: the single-process run.
        const profileDir = bench.profile && workers === 1 ? bench.tempDir('profile') : undefined;
        const server = await startMetal({
          args: ['boot', '--workers', String(workers)],
          env: { METAL_DATABASE_URL: database.url, METAL_IMAGES_DIR: imagesDir, METAL_BOOT_URL: BOOT_URL, METAL_DATA_DIR: bench.tempDir('data') },
          ...(profileDir ? { cpuProfileDir: profileDir } : {}),
        });
        const what = `metal boot --workers ${workers} (${kind.name})`;
        try {
          const base = server.addresses.boot!;
          const probe = await probeScripts(base, fleet);
          if (probe) {
            result.status = 'unavailable';
            result.note = probe;
            return result;
          }
          sampleScript.text ??= await (await fetch(`${base}/nixos/machines/${fleet.sampleReady.tag}.ipxe`)).text();
          // The reference serves a script of the same size, so it is measured once one is known.
          if (nginxRuns.length === 0) await measureNginx('before');
          const lua = pathGenerator({ before: '/nixos/machines/', prefix: FLEET_TAG_PREFIX, width: FLEET_TAG_WIDTH, count: s.machines, after: '.ipxe' });
          const runs = await loadBoth(bench, base, lua, server.pid, {
            before: () => nginxSaturated(`right before ${what}, saturated`),
            after: () => nginxSaturated(`right after ${what}, saturated`),
          });
          result.rows.push(row(`${what}, paced`, runs.paced), row(`${what}, paced in lockstep`, runs.lockstep), row(`${what}, saturated`, runs.saturated));
          const paced: BarCheck = {
            bar: `boot script p99 < 20 ms, ${s.scriptClients} clients each asking every ${PAUSE_MS} ms (independent phases), ${s.machines} machines, ${workers === 1 ? 'one process' : `${workers} processes`} (${kind.name})`,
            target: '< 20 ms, no errors',
            measured: `${round(runs.paced.p99Ms)} ms at ${round(runs.paced.requestsPerSecond)} req/s, ${errorCount(runs.paced)} errors (in lockstep: ${round(runs.lockstep.p99Ms)} ms)`,
            met: runs.paced.p99Ms < 20 && errorCount(runs.paced) === 0,
          };
          const share = THROUGHPUT_BARS[workers];
          const saturated: BarCheck = {
            bar: `boot scripts/s, ${s.scriptClients} clients asking without pause, ${s.machines} machines, ${workers === 1 ? 'one process' : `${workers} processes`} (${kind.name})`,
            target: `≥ ${share.toFixed(1)} × one nginx worker, no errors`,
            measured: `${round(runs.saturated.requestsPerSecond)} req/s (p99 ${round(runs.saturated.p99Ms)} ms), ${errorCount(runs.saturated)} errors`,
            met: null,
          };
          result.bars.push(paced, saturated);
          pacedRuns.push({ bar: paced, ours: runs.paced });
          saturatedRuns.push({ bar: saturated, ours: runs.saturated, share, adjacent: runs.adjacent! });
        } finally {
          await server.stop();
          if (profileDir) {
            const p = summariseProfileDir(profileDir, `${what} under the script storm`);
            if (p) result.profiles.push(p);
          }
        }
      }
    } finally {
      await database.cleanup();
    }
  }

  try {
    await measureNginx('after');
  } finally {
    await nginx?.stop();
  }
  const mean = (f: (r: { paced: LoadResult; lockstep: LoadResult; saturated: LoadResult }) => number) => nginxRuns.reduce((sum, r) => sum + f(r), 0) / nginxRuns.length;
  const nginxRps = mean((r) => r.saturated.requestsPerSecond);
  const nginxPacedP99 = mean((r) => r.paced.p99Ms);
  for (const { bar, ours, share, adjacent } of saturatedRuns) {
    const beside = (adjacent[0].requestsPerSecond + adjacent[1].requestsPerSecond) / 2;
    const ratio = ours.requestsPerSecond / beside;
    bar.reference =
      `${round(ratio)} × nginx (${round(beside)} req/s, the mean of ${round(adjacent[0].requestsPerSecond)} and ${round(adjacent[1].requestsPerSecond)} measured right before and after; ` +
      `${round(ours.requestsPerSecond / nginxRps)} × the mean of the first and last, ${round(nginxRps)} req/s)`;
    bar.met = ratio >= share && errorCount(ours) === 0;
  }
  const nginxLockstepP99 = mean((r) => r.lockstep.p99Ms);
  for (const { bar } of pacedRuns) bar.reference = `nginx p99 ${round(nginxPacedP99)} ms (in lockstep: ${round(nginxLockstepP99)} ms)`;
  return result;
}

/**
 * Three loads on the same server. `paced`: each client asks every PAUSE_MS, at a phase of its own (a
 * fleet of held machines re-asking every few seconds), for `pacedSeconds`: the bar's reading. `lockstep`:
 * the same pause, but all clients started together keep asking together, so the server gets every
 * client's request at once every PAUSE_MS (the worst case of that load; its p99 is about the time to
 * answer one such burst). `saturated`: each client asks again the moment it has an answer (the
 * server's ceiling; latency is then clients ÷ throughput). The server's CPU time (`pid` and its
 * children) is measured over each.
 */
async function loadBoth(
  bench: BenchContext,
  url: string,
  lua: string | undefined,
  pid: number,
  reference?: { before(): Promise<LoadResult>; after(): Promise<LoadResult> },
): Promise<{ paced: MeasuredLoad; lockstep: MeasuredLoad; saturated: MeasuredLoad; adjacent?: [LoadResult, LoadResult] }> {
  const s = bench.sizes;
  const load = { url, connections: s.scriptClients, threads: 1, workDir: bench.tempDir('wrk'), ...(lua ? { luaRequest: lua } : {}) };
  await runWrk({ ...load, durationSeconds: s.warmupSeconds });
  const paced = await measuredLoad(pid, { ...load, durationSeconds: s.pacedSeconds, pauseMs: PAUSE_MS, pacing: 'phased' });
  const lockstep = await measuredLoad(pid, { ...load, durationSeconds: s.loadSeconds, pauseMs: PAUSE_MS, pacing: 'lockstep' });
  const before = await reference?.before();
  const saturated = await measuredLoad(pid, { ...load, durationSeconds: s.loadSeconds });
  const after = await reference?.after();
  return { paced, lockstep, saturated, ...(before && after ? { adjacent: [before, after] as [LoadResult, LoadResult] } : {}) };
}

/** One load, with the CPU time the server (`pid` and its children) used while it ran. */
async function measuredLoad(pid: number, options: Parameters<typeof runWrk>[0]): Promise<MeasuredLoad> {
  const cpu = measureCpu(pid);
  const r = await runWrk(options);
  return { ...r, cpuSeconds: cpu() };
}

/** A load and the CPU time the server used while it ran. */
type MeasuredLoad = LoadResult & { cpuSeconds: number };

/** Checks that a ready machine gets its own image and a waiting one a hold script; returns what is wrong, if anything. */
async function probeScripts(base: string, fleet: Fleet): Promise<string | undefined> {
  const own = await fetch(`${base}/nixos/machines/${fleet.sampleReady.tag}.ipxe`);
  const ownText = await own.text();
  if (own.status === 404 && !ownText.startsWith('#!ipxe')) return `GET /nixos/machines/<tag>.ipxe answers 404: the boot server has no script route in this version`;
  if (own.status !== 200 || !ownText.startsWith('#!ipxe')) return `the script of a ready machine is ${own.status}: ${ownText.slice(0, 200)}`;
  if (!ownText.includes(` metal.build_id=${fleet.sampleReady.buildId} `)) {
    return `the script of ready machine ${fleet.sampleReady.tag} does not boot build ${fleet.sampleReady.buildId}:\n${ownText}`;
  }
  const hold = await fetch(`${base}/nixos/machines/${fleet.sampleWaiting.tag}.ipxe`);
  const holdText = await hold.text();
  if (hold.status !== 200 || !holdText.startsWith('#!ipxe')) return `the script of a waiting machine is ${hold.status}: ${holdText.slice(0, 200)}`;
  return undefined;
}

function row(label: string, r: MeasuredLoad) {
  return {
    label,
    metrics: {
      'req/s': round(r.requestsPerSecond),
      'p50 ms': round(r.p50Ms),
      'p90 ms': round(r.p90Ms),
      'p99 ms': round(r.p99Ms),
      'max ms': round(r.maxMs),
      requests: r.requests,
      errors: errorCount(r),
      'server CPU µs/req': r.requests > 0 ? round((r.cpuSeconds * 1e6) / r.requests) : 0,
      'wrk CPU µs/req': r.requests > 0 && r.generatorCpuSeconds !== undefined ? round((r.generatorCpuSeconds * 1e6) / r.requests) : 0,
    },
  };
}
