import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { OFFLINE_NIX_CONFIG } from '../../src/builder/nix-build.ts';
import { enrollmentPayload } from '../../test/support/context.ts';
import type { BenchContext } from '../bench-context.ts';
import { summariseLatencies } from '../latency.ts';
import { startMetal, type MetalProcess } from '../metal-process.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';
import { signInAsAdmin } from '../sign-in.ts';

const STANDIN_ENTRY = fileURLToPath(new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url));
/** How long a build may stay pending before the builder counts as absent. */
const CLAIM_GIVE_UP_MS = 15_000;
const FINISH_GIVE_UP_MS = 180_000;

interface BuildView {
  id: number;
  status: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/**
 * Time from `POST /api/v1/machines/{id}/build` to a builder claiming the build (started_at - created_at),
 * with the builder in the API's process (`metal serve --roles api,builder`) and in its own
 * (`metal serve --roles api` beside `metal builder`), on each database.
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
      const password = randomBytes(18).toString('base64url');
      const env = {
        METAL_DATA_DIR: bench.tempDir('data'),
        METAL_DATABASE_URL: database.url,
        METAL_NIX_ENTRY: STANDIN_ENTRY,
        // The stand-in builds from host tools: offline, without build users or sandbox.
        NIX_CONFIG: process.env.NIX_CONFIG ?? OFFLINE_NIX_CONFIG,
        METAL_BOOT_URL: 'http://127.0.0.1:8081',
        METAL_ADMIN_PASSWORD: password,
        METAL_ENROLL_RATE: '0',
      };
      const servers: MetalProcess[] = [];
      const label = `builder in the ${placement} (${kind.name})`;
      const bar = `build claimed within 1 s, builder in the ${placement} (${kind.name})`;
      try {
        const api = await startMetal({ args: ['serve', '--roles', placement === 'same process' ? 'api,builder' : 'api'], env });
        servers.push(api);
        if (placement === 'separate process') servers.push(await startMetal({ args: ['builder'], env }));
        const base = api.addresses.api!;
        const login = await signInAsAdmin(base, password);
        if (!login.headers) throw new Error(`POST /api/v1/auth/login answered ${login.status}`);
        const measured = await requestBuilds(base, login.headers, n, `${kind.name.slice(0, 2)}${placement === 'same process' ? 's' : 'p'}`);
        if (measured.problem) {
          result.rows.push({ label, metrics: { note: measured.problem } });
          result.bars.push({ bar, target: '< 1000 ms', measured: measured.problem, met: false });
          continue;
        }
        const lat = summariseLatencies(measured.claimMs);
        result.rows.push({
          label,
          metrics: {
            'claim p50 ms': round(lat.p50),
            'claim max ms': round(lat.max),
            'build p50 s': round(summariseLatencies(measured.buildMs).p50 / 1000),
            builds: lat.count,
            failed: measured.failed,
          },
        });
        result.bars.push({ bar, target: '< 1000 ms (worst of all builds)', measured: `max ${round(lat.max)} ms`, met: lat.max < 1000 });
      } finally {
        for (const server of servers.reverse()) await server.stop();
        await database.cleanup();
      }
    }
  }
  return result;
}

/** Enrolls, configures and builds `n` machines one after another over the API, reading when each build was claimed and finished. */
async function requestBuilds(base: string, auth: Record<string, string>, n: number, prefix: string) {
  const claimMs: number[] = [];
  const buildMs: number[] = [];
  let failed = 0;
  const call = async (method: string, path: string, body?: unknown, expected = 200) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as unknown;
  };
  for (let i = 1; i <= n; i++) {
    const tag = `LAT${prefix.toUpperCase()}${String(i).padStart(4, '0')}`;
    await call('POST', '/api/v1/enroll', enrollmentPayload(tag), 201);
    await call('PUT', `/api/v1/machines/${tag}`, { hostname: `lat-${prefix}-${i}`, nixos_config: `{ ... }:\n{\n  networking.hostName = "lat-${prefix}-${i}";\n}\n` });
    const build = (await call('POST', `/api/v1/machines/${tag}/build`, undefined, 202)) as BuildView;
    const get = async () => (await call('GET', `/api/v1/builds/${build.id}`)) as BuildView;
    const claimed = await waitFor(get, (b) => b.started_at !== null, CLAIM_GIVE_UP_MS);
    if (!claimed) return { claimMs, buildMs, failed, problem: `build ${build.id} still pending after ${CLAIM_GIVE_UP_MS / 1000} s: no builder claimed it` };
    const done = await waitFor(get, (b) => b.completed_at !== null, FINISH_GIVE_UP_MS);
    if (!done) return { claimMs, buildMs, failed, problem: `build ${build.id} did not finish within ${FINISH_GIVE_UP_MS / 1000} s` };
    if (done.status !== 'success') failed++;
    claimMs.push(Date.parse(done.started_at!) - Date.parse(done.created_at));
    buildMs.push(Date.parse(done.completed_at!) - Date.parse(done.started_at!));
  }
  return { claimMs, buildMs, failed, problem: undefined };
}

/** Re-reads every 20 ms until `ok` or the deadline; the latency itself comes from the build's timestamps. */
async function waitFor(get: () => Promise<BuildView>, ok: (b: BuildView) => boolean, timeoutMs: number): Promise<BuildView | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const b = await get();
    if (ok(b)) return b;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}
