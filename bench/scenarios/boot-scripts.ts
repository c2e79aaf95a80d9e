import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { FLEET_TAG_PREFIX, FLEET_TAG_WIDTH, seedFleet, type Fleet } from '../fleet.ts';
import { startMetal } from '../metal-process.ts';
import { startNginx } from '../nginx-process.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';
import { errorCount, pathGenerator, runWrk, type LoadResult } from '../wrk.ts';

const BOOT_URL = 'http://127.0.0.1:8081';

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
  });
  let sampleScript: string | undefined;
  let metalP99: number | undefined;
  let metalRps: number | undefined;
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
    const metal = await startMetal({
      args: ['boot'],
      env: { METAL_DATABASE_URL: database.url, METAL_IMAGES_DIR: imagesDir, METAL_BOOT_URL: BOOT_URL, METAL_DATA_DIR: bench.tempDir('data') },
      ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    });
    try {
      const base = metal.addresses.boot!;
      const probe = await probeScripts(base, fleet);
      if (probe) {
        result.status = 'unavailable';
        result.note = probe;
        return result;
      }
      sampleScript ??= await (await fetch(`${base}/nixos/machines/${fleet.sampleReady.tag}.ipxe`)).text();
      const lua = pathGenerator({ before: '/nixos/machines/', prefix: FLEET_TAG_PREFIX, width: FLEET_TAG_WIDTH, count: s.machines, after: '.ipxe' });
      const load = { url: base, connections: s.scriptClients, threads: 1, luaRequest: lua, workDir: bench.tempDir('wrk') };
      await runWrk({ ...load, durationSeconds: s.warmupSeconds });
      const r = await runWrk({ ...load, durationSeconds: s.loadSeconds });
      result.rows.push(row(`metal boot (${kind.name})`, r));
      if (kind.name === 'sqlite') {
        metalP99 = r.p99Ms;
        metalRps = r.requestsPerSecond;
      }
      result.bars.push({
        bar: `boot script p99 < 20 ms, ${s.scriptClients} clients, ${s.machines} machines (${kind.name})`,
        target: '< 20 ms, no errors',
        measured: `${round(r.p99Ms)} ms, ${errorCount(r)} errors`,
        met: r.p99Ms < 20 && errorCount(r) === 0,
      });
    } finally {
      await metal.stop();
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
    const load = { url: `${nginx.url}/nixos/machines/script.ipxe`, connections: s.scriptClients, threads: 1, workDir: bench.tempDir('wrk') };
    await runWrk({ ...load, durationSeconds: s.warmupSeconds });
    const r = await runWrk({ ...load, durationSeconds: s.loadSeconds });
    result.rows.push(row('nginx, 1 worker, one static script', r));
    const bar = result.bars[0];
    if (bar && metalRps !== undefined && metalP99 !== undefined) {
      bar.reference = `${round(metalRps / r.requestsPerSecond)} × nginx throughput; nginx p99 ${round(r.p99Ms)} ms`;
    }
  } finally {
    await nginx.stop();
  }
  return result;
}

/** Checks that a ready machine gets its own image and a waiting one a hold script; returns what is wrong, if anything. */
async function probeScripts(base: string, fleet: Fleet): Promise<string | undefined> {
  const own = await fetch(`${base}/nixos/machines/${fleet.sampleReady.tag}.ipxe`);
  const ownText = await own.text();
  if (own.status === 404 && !ownText.startsWith('#!ipxe')) return `GET /nixos/machines/<tag>.ipxe answers 404: the boot server has no script route in this version`;
  if (own.status !== 200 || !ownText.startsWith('#!ipxe')) return `the script of a ready machine is ${own.status}: ${ownText.slice(0, 200)}`;
  if (!ownText.includes(`/images/builds/${fleet.sampleReady.buildId}/`)) {
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
