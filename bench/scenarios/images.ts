import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import { seedFleet, writeImage } from '../fleet.ts';
import { residentBytes, sampleResidentMemory, startMetal } from '../metal-process.ts';
import { startNginx } from '../nginx-process.ts';
import { measureCpu } from '../process-cpu.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';
import { errorCount, runWrk, type LoadResult } from '../wrk.ts';

/** Memory may grow by at most this much while serving, whatever the file size and client count. */
const FLAT_MEMORY_BYTES = 64 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Parallel downloads of one large initrd from the boot server, beside nginx with sendfile on the same file. */
export async function benchImages(bench: BenchContext): Promise<ScenarioResult> {
  const s = bench.sizes;
  const result = newScenario('images', `Images: parallel downloads of a ${s.imageBytes / MiB} MiB initrd`, {
    'file MiB': s.imageBytes / MiB,
    clients: s.imageClients.join(' and '),
    seconds: s.imageSeconds,
    'wrk threads': 1,
  });
  const imagesDir = bench.tempDir('images');
  // One machine with a published build, whose initrd nginx sends in front of metal boot (by its key).
  const databaseUrl = `sqlite:${join(bench.tempDir('db'), 'metal.db')}`;
  const database = await openDatabase(databaseUrl);
  let keyedUrlPath: string;
  try {
    await migrate(database);
    const fleet = await seedFleet(database, { count: 2, imagesDir });
    const { image_key } = await database.db.selectFrom('builds').select('image_key').where('id', '=', fleet.sampleReady.buildId).executeTakeFirstOrThrow();
    writeRandomFile(join(imagesDir, 'builds', String(fleet.sampleReady.buildId), 'initrd'), s.imageBytes);
    keyedUrlPath = `/images/builds/${image_key}/initrd`;
  } finally {
    await database.close();
  }

  // The registration image: served by the same code as a build's, and reachable without a build in the
  // database (a build's files are only served under its random image key).
  const registrationDir = join(imagesDir, 'registration');
  mkdirSync(registrationDir, { recursive: true });
  writeImage(registrationDir, 'registration');
  writeRandomFile(join(registrationDir, 'initrd'), s.imageBytes);

  const metalRuns = new Map<number, LoadResult>();
  const profileDir = bench.profile ? bench.tempDir('profile') : undefined;
  // One process, so its memory is the memory of what serves (a worker's would be another process).
  const metal = await startMetal({
    args: ['boot', '--workers', '1'],
    env: {
      METAL_DATABASE_URL: databaseUrl,
      METAL_IMAGES_DIR: imagesDir,
      METAL_BOOT_URL: 'http://127.0.0.1:8081',
      METAL_DATA_DIR: bench.tempDir('data'),
    },
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
  });
  try {
    const url = `${metal.addresses.boot}/images/registration/initrd`;
    const problem = await probeImage(url, s.imageBytes);
    if (problem) {
      result.status = 'unavailable';
      result.note = problem;
      return result;
    }
    // A first download warms the process up (JIT, buffer pools), so "before" is its steady state.
    await runWrk({ url, connections: 1, threads: 1, durationSeconds: s.warmupSeconds, timeoutSeconds: 120, workDir: bench.tempDir('wrk') });
    for (const clients of s.imageClients) {
      const before = residentBytes(metal.pid) ?? 0;
      const sampling = sampleResidentMemory(metal.pid);
      const cpu = measureCpu(metal.pid);
      const r = await runWrk({ url, connections: clients, threads: 1, durationSeconds: s.imageSeconds, timeoutSeconds: 120, workDir: bench.tempDir('wrk') });
      const cpuSeconds = cpu();
      const { peak } = sampling();
      const after = residentBytes(metal.pid) ?? 0;
      metalRuns.set(clients, r);
      result.rows.push({
        label: `metal boot, ${clients} clients`,
        metrics: { ...throughput(r, cpuSeconds), 'RSS before MiB': round(before / MiB), 'RSS peak MiB': round(peak / MiB), 'RSS after MiB': round(after / MiB) },
      });
      result.bars.push({
        bar: `image serving memory flat, ${clients} clients`,
        target: `peak RSS grows < ${FLAT_MEMORY_BYTES / MiB} MiB`,
        measured: `${round(before / MiB)} → ${round(peak / MiB)} → ${round(after / MiB)} MiB`,
        met: peak - before < FLAT_MEMORY_BYTES && errorCount(r) === 0,
      });
    }
    // nginx in front (the configuration `metal image nginx-config` writes): nginx sends the file and
    // asks metal boot which build the key is, once per download. CPU is both processes'.
    const front = await startNginx({ prefix: bench.tempDir('nginx-front'), root: imagesDir, sendfile: true, workers: 'auto', front: { upstream: new URL(metal.addresses.boot!).host, imagesDir } });
    try {
      const url = `${front.url}${keyedUrlPath}`;
      const problem = await probeImage(url, s.imageBytes);
      if (problem) throw new Error(`bench: nginx in front of metal boot: ${problem}`);
      for (const clients of s.imageClients) {
        const nginxCpu = measureCpu(front.pid);
        const metalCpu = measureCpu(metal.pid);
        const r = await runWrk({ url, connections: clients, threads: 1, durationSeconds: s.imageSeconds, timeoutSeconds: 120, workDir: bench.tempDir('wrk') });
        result.rows.push({ label: `nginx in front of metal boot (metal image nginx-config), a worker per core, ${clients} clients`, metrics: throughput(r, nginxCpu() + metalCpu()) });
      }
    } finally {
      await front.stop();
    }
  } finally {
    await metal.stop();
    if (profileDir) {
      const p = summariseProfileDir(profileDir, 'metal boot serving images');
      if (p) result.profiles.push(p);
    }
  }

  // nginx with one worker is one thread; the server under test also reads files on libuv's thread
  // pool, so the bar is judged against nginx with a worker per core, the stronger of the two.
  const reference = new Map<number, LoadResult>();
  for (const workers of [1, 'auto'] as const) {
    const nginx = await startNginx({ prefix: bench.tempDir('nginx'), root: imagesDir, sendfile: true, workers });
    try {
      for (const clients of s.imageClients) {
        const cpu = measureCpu(nginx.pid);
        const r = await runWrk({ url: `${nginx.url}/registration/initrd`, connections: clients, threads: 1, durationSeconds: s.imageSeconds, timeoutSeconds: 120, workDir: bench.tempDir('wrk') });
        result.rows.push({ label: `nginx sendfile, ${workers === 1 ? '1 worker' : 'a worker per core'}, ${clients} clients`, metrics: throughput(r, cpu()) });
        if (workers === 'auto') reference.set(clients, r);
      }
    } finally {
      await nginx.stop();
    }
  }
  for (const clients of s.imageClients) {
    const ours = metalRuns.get(clients)!;
    const r = reference.get(clients)!;
    const ratio = ours.megabytesPerSecond / r.megabytesPerSecond;
    result.bars.push({
      bar: `image throughput ≥ 90% of nginx, ${clients} clients`,
      target: '≥ 0.90 × nginx (a worker per core)',
      measured: `${round(ours.megabytesPerSecond)} MB/s`,
      reference: `${round(ratio)} × nginx (${round(r.megabytesPerSecond)} MB/s)`,
      met: ratio >= 0.9 && errorCount(ours) === 0,
    });
  }
  return result;
}

/** Throughput, latency, and the server's CPU seconds (all its processes, user and system) per GB sent. */
function throughput(r: LoadResult, cpuSeconds: number) {
  return {
    'MB/s': round(r.megabytesPerSecond),
    'server CPU s/GB': r.bytes > 0 ? round(cpuSeconds / (r.bytes / 1e9)) : 0,
    downloads: r.requests,
    'p50 s': round(r.p50Ms / 1000),
    'p99 s': round(r.p99Ms / 1000),
    errors: errorCount(r),
  };
}

/** Checks length and a range request; returns what is wrong, if anything. */
async function probeImage(url: string, size: number): Promise<string | undefined> {
  const head = await fetch(url, { method: 'HEAD' });
  if (head.status === 404) return 'GET /images/... answers 404: the boot server serves no images in this version';
  if (head.status !== 200) return `HEAD ${new URL(url).pathname} answered ${head.status}`;
  if (head.headers.get('content-length') !== String(size)) return `Content-Length ${head.headers.get('content-length')}, expected ${size}`;
  const range = await fetch(url, { headers: { range: 'bytes=0-15' } });
  const body = Buffer.from(await range.arrayBuffer());
  if (range.status !== 206 || body.length !== 16) return `a Range request answered ${range.status} with ${body.length} bytes`;
  return undefined;
}

function writeRandomFile(path: string, bytes: number): void {
  const chunk = Buffer.alloc(8 * MiB);
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += chunk.length) {
      const n = Math.min(chunk.length, bytes - written);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
    }
  } finally {
    closeSync(fd);
  }
}
