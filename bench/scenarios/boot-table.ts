import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import type { BenchContext } from '../bench-context.ts';
import { fleetTag } from '../fleet.ts';
import { newScenario, round, type ScenarioResult } from '../result.ts';

const PROBE = fileURLToPath(new URL('../boot-table-probe.ts', import.meta.url));
const MIB = 1024 * 1024;

/**
 * The boot server's decision table at fleet size: how long a cold start takes to load it and what it
 * costs in memory per worker, measured in a fresh process (heap after a full GC, before and after).
 */
export async function benchBootTable(bench: BenchContext): Promise<ScenarioResult> {
  const n = bench.sizes.tableMachines;
  const result = newScenario('boot-table', `Boot decision table: cold start and memory with ${n.toLocaleString('en')} machines`, {
    machines: n,
    'published images': 'every other machine',
    measured: 'in a fresh node process with --expose-gc: heap used after gc, before and after loading',
  });
  for (const kind of await bench.databases()) {
    const database = kind.fresh();
    await seed(database.url, n);
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', PROBE, database.url], { timeout: 300_000 });
    const probe = JSON.parse(stdout.trim().split('\n').pop()!) as { machines: number; loadMs: number; heapBytes: number; rssBytes: number; found: boolean };
    if (probe.machines !== n || !probe.found) throw new Error(`boot-table: loaded ${probe.machines} of ${n} machines`);
    result.rows.push({
      label: `metal boot table (${kind.name})`,
      metrics: {
        'load ms': round(probe.loadMs),
        'heap MiB': round(probe.heapBytes / MIB),
        'bytes/machine': Math.round(probe.heapBytes / n),
        'RSS growth MiB': round(probe.rssBytes / MIB),
      },
    });
    const scale = 100_000 / n;
    result.bars.push(
      {
        bar: `memory of the table for 100,000 machines (${kind.name})`,
        target: '< 64 MiB per worker',
        measured: `${round((probe.heapBytes * scale) / MIB)} MiB${scale !== 1 ? ' (scaled)' : ''}`,
        met: scale === 1 ? probe.heapBytes < 64 * MIB : null,
      },
      {
        bar: `cold start with 100,000 machines (${kind.name})`,
        target: '< 3 s',
        measured: `${round(probe.loadMs)} ms for ${n.toLocaleString('en')}`,
        met: scale === 1 ? probe.loadMs < 3000 : null,
      },
    );
  }
  return result;
}

/** Writes `n` machines (every other one with a published build) straight into a fresh database. */
async function seed(url: string, n: number): Promise<void> {
  const database = await openDatabase(url);
  try {
    await migrate(database);
    const now = new Date().toISOString();
    const hex = (v: number) => (v & 0xff).toString(16).padStart(2, '0');
    for (let start = 1; start <= n; start += 500) {
      const rows = [];
      for (let i = start; i < Math.min(start + 500, n + 1); i++) {
        rows.push({
          service_tag: fleetTag(i),
          mac_address: `52:54:00:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`,
          identity_mac: `52:54:00:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`,
          system_uuid: `4c4c4544-0000-1000-8000-${i.toString(16).padStart(12, '0')}`,
          status: 'configured',
          hostname: `node-${i}`,
          hardware: '{}',
          enrolled_at: now,
          updated_at: now,
        });
      }
      await database.db.insertInto('machines').values(rows).execute();
    }
    const ids = await database.db.selectFrom('machines').select('id').execute();
    for (let start = 0; start < ids.length; start += 1000) {
      const slice = ids.slice(start, start + 1000).filter((_, k) => (start + k) % 2 === 0);
      if (slice.length === 0) continue;
      const builds = await database.db
        .insertInto('builds')
        .values(slice.map(({ id }) => ({ machine_id: Number(id), status: 'success', config: '{}', hostname: 'h', service_tag: 't', log_output: '', attempts: 1, boot_token: randomBytes(24).toString('base64url'), image_key: randomBytes(16).toString('base64url'), created_at: now, updated_at: now })))
        .returning(['id', 'machine_id'])
        .execute();
      for (const b of builds) {
        await database.db.updateTable('machines').set({ image_build_id: Number(b.id), status: 'ready' }).where('id', '=', Number(b.machine_id)).execute();
      }
    }
  } finally {
    await database.close();
  }
}
