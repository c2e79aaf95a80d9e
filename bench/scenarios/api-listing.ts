import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { FLEET_TAG_PREFIX, FLEET_TAG_WIDTH, seedFleet } from '../fleet.ts';
import { startMetal, type MetalProcess } from '../metal-process.ts';
import { signInAsAdmin } from '../sign-in.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';
import { errorCount, pathGenerator, runWrk } from '../wrk.ts';

/** Listing, filtering and searching a large fleet over HTTP, as the dashboard and scripts do. */
export async function benchApiListing(bench: BenchContext): Promise<ScenarioResult> {
  const s = bench.sizes;
  const result = newScenario('api-listing', `API at scale: listing ${s.machines} machines`, {
    machines: s.machines,
    clients: s.apiClients,
    seconds: s.loadSeconds,
    'page size': 50,
    authentication: 'bearer token of the first admin',
  });
  // Offsets are multiples of 100 (the generator appends "00"): random pages across the whole list.
  const hundreds = Math.floor(s.machines / 100);
  const queries = [
    // Random pages of everything, ready machines only, and a search for one tag (`BENCH0123` matches up to 10).
    { name: 'list (random page)', lua: pathGenerator({ before: '/api/v1/machines?limit=50&offset=', prefix: '', width: 1, count: hundreds - 1, after: '00', seed: 1 }) },
    { name: 'filter status=ready', lua: pathGenerator({ before: '/api/v1/machines?status=ready&limit=50&offset=', prefix: '', width: 1, count: Math.max(1, Math.floor(hundreds / 2) - 1), after: '00', seed: 2 }) },
    { name: 'search tag', lua: pathGenerator({ before: '/api/v1/machines?limit=50&search=', prefix: FLEET_TAG_PREFIX, width: FLEET_TAG_WIDTH - 1, count: Math.floor(s.machines / 10), after: '', seed: 3 }) },
  ];
  for (const kind of await bench.databases()) {
    const database = kind.fresh();
    const db = await openDatabase(database.url);
    try {
      await migrate(db);
      await seedFleet(db, { count: s.machines, imagesDir: bench.tempDir('images') });
    } finally {
      await db.close();
    }
    const profileDir = bench.profile ? bench.tempDir('profile') : undefined;
    const { server, headers } = await startApi(bench, database.url, profileDir);
    try {
      await settle(database.url);
      const base = server.addresses.api!;
      const probe = await fetch(`${base}/api/v1/machines?limit=1`, { headers });
      const body = (await probe.json()) as { total?: number };
      if (probe.status !== 200 || body.total !== s.machines) throw new Error(`GET /api/v1/machines answered ${probe.status}: ${JSON.stringify(body).slice(0, 300)}`);
      for (const q of queries) {
        const load = { url: base, connections: s.apiClients, threads: 1, luaRequest: q.lua, headers, workDir: bench.tempDir('wrk') };
        await runWrk({ ...load, durationSeconds: s.warmupSeconds });
        const r = await runWrk({ ...load, durationSeconds: s.loadSeconds });
        result.rows.push({
          label: `${q.name} (${kind.name})`,
          metrics: { 'req/s': round(r.requestsPerSecond), 'p50 ms': round(r.p50Ms), 'p99 ms': round(r.p99Ms), 'max ms': round(r.maxMs), errors: errorCount(r) },
        });
        result.bars.push({
          bar: `${q.name} p99 < 50 ms, ${s.apiClients} clients (${kind.name})`,
          target: '< 50 ms, no errors',
          measured: `${round(r.p99Ms)} ms, ${errorCount(r)} errors`,
          met: r.p99Ms < 50 && errorCount(r) === 0,
        });
      }
    } finally {
      await server.stop();
      if (profileDir) {
        const p = summariseProfileDir(profileDir, `metal api (${kind.name}) under listing load`);
        if (p) result.profiles.push(p);
      }
      await database.cleanup();
    }
  }
  return result;
}

/**
 * The fleet as it is in service. The API's first start gives every seeded machine its desired hash
 * (the nixpkgs pin is new to this database), which rewrites every row; PostgreSQL's autovacuum
 * vacuums and analyzes such a table within a minute, and until then a page of ids is read from the
 * heap instead of the primary key's index alone and counting the fleet reads the dead rows too
 * (7.4 and 6.6 ms instead of 0.8 ms each, measured with log_min_duration_statement).
 */
async function settle(databaseUrl: string): Promise<void> {
  const db = await openDatabase(databaseUrl);
  try {
    if (db.dialect === 'postgres') await sql`vacuum analyze machines`.execute(db.db);
  } finally {
    await db.close();
  }
}

/** `metal serve --roles api`, signed in as the first admin. */
async function startApi(bench: BenchContext, databaseUrl: string, profileDir: string | undefined): Promise<{ server: MetalProcess; headers: Record<string, string> }> {
  const password = randomBytes(18).toString('base64url');
  const env = { METAL_DATABASE_URL: databaseUrl, METAL_DATA_DIR: bench.tempDir('data'), METAL_ADMIN_PASSWORD: password, METAL_BOOT_URL: 'http://127.0.0.1:8081' };
  const server = await startMetal({ args: ['serve', '--roles', 'api'], env, ...(profileDir ? { cpuProfileDir: profileDir } : {}) });
  const login = await signInAsAdmin(server.addresses.api!, password);
  if (!login.headers) {
    await server.stop();
    throw new Error(`POST /api/v1/auth/login as the first admin answered ${login.status}`);
  }
  return { server, headers: login.headers };
}
