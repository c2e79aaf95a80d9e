import { Agent, request } from 'node:http';
import { sql } from 'kysely';
import { openDatabase } from '../../src/storage/database.ts';
import { enrollmentPayload } from '../../test/support/context.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseProfileDir } from '../cpu-profile.ts';
import { summariseLatencies } from '../latency.ts';
import { startMetal } from '../metal-process.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';

/** Every machine of a data centre registering at the same moment: all must be stored, once each. */
export async function benchEnrollment(bench: BenchContext): Promise<ScenarioResult> {
  const n = bench.sizes.enrollments;
  const result = newScenario('enrollment', `Enrollment storm: ${n} machines enroll at once`, {
    enrollments: n,
    'connections': `${n}, one per machine, all opened at once`,
    METAL_ENROLL_RATE: '0 (one source address here)',
  });
  for (const kind of await bench.databases()) {
    const database = kind.fresh();
    const profileDir = bench.profile ? bench.tempDir('profile') : undefined;
    const metal = await startMetal({
      args: ['boot'],
      env: { METAL_DATABASE_URL: database.url, METAL_ENROLL_RATE: '0', METAL_BOOT_URL: 'http://127.0.0.1:8081', METAL_DATA_DIR: bench.tempDir('data') },
      ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    });
    let storm: Awaited<ReturnType<typeof enrollAll>>;
    try {
      storm = await enrollAll(metal.addresses.boot!, n);
    } finally {
      await metal.stop();
      if (profileDir) {
        const p = summariseProfileDir(profileDir, `metal boot (${kind.name}) during the enrollment storm`);
        if (p) result.profiles.push(p);
      }
    }
    const db = await openDatabase(database.url);
    let stored: number;
    let distinct: number;
    let events: number;
    try {
      const m = await db.db
        .selectFrom('machines')
        .select([(eb) => eb.fn.countAll<string | number>().as('n'), sql<string | number>`count(distinct service_tag)`.as('d')])
        .where('service_tag', 'like', 'STORM%')
        .executeTakeFirstOrThrow();
      stored = Number(m.n);
      distinct = Number(m.d);
      const e = await db.db.selectFrom('events').select((eb) => eb.fn.countAll<string | number>().as('n')).where('kind', '=', 'machine.enrolled').executeTakeFirstOrThrow();
      events = Number(e.n);
    } finally {
      await db.close();
      await database.cleanup();
    }
    const lat = summariseLatencies(storm.latencies);
    const ok = stored === n && distinct === n && events === n && storm.created === n;
    if (!ok) console.error(`bench: enrollment (${kind.name}): FAIL: stored ${stored}, distinct ${distinct}, events ${events}, 201 responses ${storm.created} of ${n}`);
    result.rows.push({
      label: `metal boot (${kind.name})`,
      metrics: {
        'enrollments/s': round(n / (storm.wallMs / 1000)),
        'p50 ms': round(lat.p50),
        'p99 ms': round(lat.p99),
        'max ms': round(lat.max),
        '201': storm.created,
        other: Object.entries(storm.otherStatuses).map(([k, v]) => `${k}×${v}`).join(' ') || 0,
        stored,
        events,
      },
    });
    result.bars.push({
      bar: `${n} simultaneous enrollments all stored once (${kind.name})`,
      target: `${n} stored, ${n} distinct, ${n} × 201`,
      measured: `${stored} stored, ${distinct} distinct, ${storm.created} × 201`,
      met: ok,
    });
  }
  return result;
}

/** Sends `n` enrollments of distinct tags at once, each on its own connection; bounded by a timeout. */
async function enrollAll(base: string, n: number) {
  const url = new URL('/api/v1/enroll', base);
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const latencies: number[] = [];
  const otherStatuses: Record<string, number> = {};
  let created = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const tag = `STORM${String(i + 1).padStart(5, '0')}`;
      const body = JSON.stringify(enrollmentPayload(tag, { mac_address: `52:54:01:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` }));
      return new Promise<void>((resolve) => {
        const started = performance.now();
        const req = request(url, { method: 'POST', agent, timeout: 60_000, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - started);
            if (res.statusCode === 201) created++;
            else otherStatuses[String(res.statusCode)] = (otherStatuses[String(res.statusCode)] ?? 0) + 1;
            resolve();
          });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (err) => {
          otherStatuses[err.message] = (otherStatuses[err.message] ?? 0) + 1;
          resolve();
        });
        req.end(body);
      });
    }),
  );
  const wallMs = performance.now() - t0;
  agent.destroy();
  return { latencies, created, otherStatuses, wallMs };
}
