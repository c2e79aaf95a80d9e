import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { FLEET_TAG_PREFIX, FLEET_TAG_WIDTH, seedFleet, type Fleet } from '../fleet.ts';
import { startMetal } from '../metal-process.ts';
import { startNginx } from '../nginx-process.ts';
import { newScenario, round, type BarCheck, type ScenarioResult } from '../result.ts';
import { errorCount, pathGenerator, runWrk, type LoadResult } from '../wrk.ts';

const BOOT_URL = 'http://127.0.0.1:8081';
/**
 * Pause between one client's asks in the paced load: 500 clients every 250 ms is 2,000 requests a
 * second, what 10,000 machines held by a running build produce when each chains its script every 5 s.
 */
const PAUSE_MS = 250;

/**
 * Boot storm: many clients ask for random machines' iPXE scripts from a fleet in which half boot their
 * own image and half are held; beside nginx (one worker) serving one static script of the same size.
 */
export async function benchBootScripts(bench: BenchContext): Promise<ScenarioResult> {
  const s = bench.sizes;
  const result = newScenario('boot-scripts', 'Boot scripts: random machines, many clients at once', {
    machines: s.machines,
    clients: s.scriptClients,
    seconds: s.loadSeconds,
    'wrk threads': 1,
    'paced: pause between one client’s asks, ms': PAUSE_MS,
  });
  let sampleScript: string | undefined;
  const compared: Array<{ bar: BarCheck; ours: LoadResult; mode: 'paced' | 'saturated' }> = [];
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
    const profileDir = bench.profile ? bench.tempDir('profile') : undefined;
    const server = await startMetal({
      args: ['boot'],
      env: { METAL_DATABASE_URL: database.url, METAL_IMAGES_DIR: imagesDir, METAL_BOOT_URL: BOOT_URL, METAL_DATA_DIR: bench.tempDir('data') },
      ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    });
    try {
      const base = server.addresses.boot!;
      const probe = await probeScripts(base, fleet);
      if (probe) {
        result.status = 'unavailable';
        result.note = probe;
        return result;
      }
      sampleScript ??= await (await fetch(`${base}/nixos/machines/${fleet.sampleReady.tag}.ipxe`)).text();
      const lua = pathGenerator({ before: '/nixos/machines/', prefix: FLEET_TAG_PREFIX, width: FLEET_TAG_WIDTH, count: s.machines, after: '.ipxe' });
      const runs = await loadBoth(bench, base, lua);
      result.rows.push(row(`metal boot (${kind.name}), paced`, runs.paced), row(`metal boot (${kind.name}), saturated`, runs.saturated));
      for (const mode of ['paced', 'saturated'] as const) {
        const r = runs[mode];
        const bar: BarCheck = {
          bar: `boot script p99 < 20 ms, ${s.scriptClients} clients ${mode === 'paced' ? `each asking every ${PAUSE_MS} ms` : 'asking without pause'}, ${s.machines} machines (${kind.name})`,
          target: '< 20 ms, no errors',
          measured: `${round(r.p99Ms)} ms at ${round(r.requestsPerSecond)} req/s, ${errorCount(r)} errors`,
          met: r.p99Ms < 20 && errorCount(r) === 0,
        };
        result.bars.push(bar);
        compared.push({ bar, ours: r, mode });
      }
    } finally {
      await server.stop();
      if (profileDir) {
        const p = summariseProfileDir(profileDir, `metal boot (${kind.name}) under the script storm`);
        if (p) result.profiles.push(p);
      }
      await database.cleanup();
    }
  }

  const root = bench.tempDir('nginx-root');
  mkdirSync(join(root, 'nixos', 'machines'), { recursive: true });
  writeFileSync(join(root, 'nixos', 'machines', 'script.ipxe'), sampleScript ?? '#!ipxe\n');
  const nginx = await startNginx({ prefix: bench.tempDir('nginx'), root, sendfile: false });
  try {
    const runs = await loadBoth(bench, `${nginx.url}/nixos/machines/script.ipxe`, undefined);
    result.rows.push(row('nginx, 1 worker, one static script, paced', runs.paced), row('nginx, 1 worker, one static script, saturated', runs.saturated));
    for (const { bar, ours, mode } of compared) {
      const ref = runs[mode];
      bar.reference = `nginx p99 ${round(ref.p99Ms)} ms at ${round(ref.requestsPerSecond)} req/s; throughput ${round(ours.requestsPerSecond / ref.requestsPerSecond)} × nginx`;
    }
  } finally {
    await nginx.stop();
  }
  return result;
}

/**
 * Two loads on the same server: `paced`, each client waiting PAUSE_MS between asks (what a fleet of
 * held machines re-asking every few seconds produces), and `saturated`, each client asking again the
 * moment it has an answer (the server's ceiling; latency is then clients ÷ throughput).
 */
async function loadBoth(bench: BenchContext, url: string, lua: string | undefined): Promise<{ paced: LoadResult; saturated: LoadResult }> {
  const s = bench.sizes;
  const load = { url, connections: s.scriptClients, threads: 1, workDir: bench.tempDir('wrk'), ...(lua ? { luaRequest: lua } : {}) };
  await runWrk({ ...load, durationSeconds: s.warmupSeconds });
  const paced = await runWrk({ ...load, durationSeconds: s.loadSeconds, pauseMs: PAUSE_MS });
  const saturated = await runWrk({ ...load, durationSeconds: s.loadSeconds });
  return { paced, saturated };
}

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

function row(label: string, r: LoadResult) {
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
    },
  };
}
