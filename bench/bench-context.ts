import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshPostgres, freshSqlite, isPostgresAvailable, type TestDatabase } from '../test/support/databases.ts';
import { onCleanup } from './cleanup.ts';

/** Sizes of one run: `quick` checks that everything works in seconds; `full` is what results are quoted from. */
export interface BenchSizes {
  machines: number;
  scriptClients: number;
  loadSeconds: number;
  /** The paced load with clients at independent phases: its p99 is the bar's reading, so it gets the most requests. */
  pacedSeconds: number;
  warmupSeconds: number;
  imageBytes: number;
  imageClients: number[];
  imageSeconds: number;
  enrollments: number;
  builds: number;
  apiClients: number;
  /** Machines in the boot server's in-memory table for the memory and cold-start measurement. */
  tableMachines: number;
}

/** The sizes results are quoted from: the product's bars name them. */
export const FULL: BenchSizes = {
  machines: 10_000,
  scriptClients: 500,
  loadSeconds: 15,
  pacedSeconds: 60,
  warmupSeconds: 3,
  imageBytes: 256 * 1024 * 1024,
  imageClients: [8, 32],
  imageSeconds: 15,
  enrollments: 1000,
  builds: 10,
  apiClients: 8,
  tableMachines: 100_000,
};

/** Small enough to check the whole harness in about a minute. */
export const QUICK: BenchSizes = {
  machines: 1000,
  scriptClients: 100,
  loadSeconds: 2,
  pacedSeconds: 3,
  warmupSeconds: 1,
  imageBytes: 16 * 1024 * 1024,
  imageClients: [8],
  imageSeconds: 2,
  enrollments: 200,
  builds: 2,
  apiClients: 4,
  tableMachines: 5_000,
};

/** What every scenario gets: its sizes, a scratch directory, the databases to run on, and whether to profile. */
export interface BenchContext {
  sizes: BenchSizes;
  quick: boolean;
  /** Run the server under test with `node --cpu-prof` and summarise where its time went. */
  profile: boolean;
  /** A fresh empty directory, removed when the bench ends. */
  tempDir(name: string): string;
  /** SQLite always; PostgreSQL when it answers (a fresh schema per call). */
  databases(): Promise<Array<{ name: 'sqlite' | 'postgres'; fresh: () => TestDatabase }>>;
}

/** Builds the context; `root` holds every temporary file of the run. */
export function createBenchContext(sizes: BenchSizes, quick: boolean, profile: boolean): BenchContext {
  const root = mkdtempSync(join(tmpdir(), 'metal-bench-'));
  onCleanup('temporary files', () => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  return {
    sizes,
    quick,
    profile,
    tempDir: (name) => mkdtempSync(join(root, `${name}-${n++}-`)),
    async databases() {
      const kinds: Array<{ name: 'sqlite' | 'postgres'; fresh: () => TestDatabase }> = [{ name: 'sqlite', fresh: trackedSqlite }];
      if (await isPostgresAvailable().catch(() => false)) {
        kinds.push({
          name: 'postgres',
          fresh: () => {
            const db = freshPostgres();
            onCleanup('PostgreSQL schema', () => db.cleanup());
            return db;
          },
        });
      }
      return kinds;
    },
  };
}

/** Fresh SQLite database files live in their own temp dirs; this removes them at the end too. */
export function trackedSqlite(): TestDatabase {
  const db = freshSqlite();
  onCleanup('SQLite file', () => db.cleanup());
  return db;
}
