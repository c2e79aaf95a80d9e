import type { MachineInfo } from './machine-info.ts';

/** One line of a scenario's table: what was measured (metal on SQLite, nginx, …) and its numbers. */
export interface ResultRow {
  label: string;
  metrics: Record<string, number | string>;
}

/** A product bar checked against a measurement; `met` is null when it could not be measured. */
export interface BarCheck {
  bar: string;
  target: string;
  measured: string;
  /** e.g. `0.93 × nginx` */
  reference?: string;
  met: boolean | null;
}

/** The top self-time frames of a CPU profile of the server under load. */
export interface ProfileSummary {
  label: string;
  totalMs: number;
  frames: Array<{ frame: string; selfMs: number; percent: number }>;
  /** The same self time grouped by package or folder (`fastify`, `src/boot`, `node:internal`). */
  areas: Array<{ frame: string; selfMs: number; percent: number }>;
}

/** One benchmark's outcome: its parameters, measurements, bars and profiles. */
export interface ScenarioResult {
  name: string;
  title: string;
  /** `unavailable`: the part it measures is not present (e.g. a route answers 404); `failed`: it crashed. */
  status: 'ok' | 'unavailable' | 'failed';
  note?: string;
  parameters: Record<string, number | string>;
  rows: ResultRow[];
  bars: BarCheck[];
  profiles: ProfileSummary[];
}

/** A whole run, as written to bench/results/<date>.json. */
export interface RunResult {
  startedAt: string;
  finishedAt: string;
  mode: 'quick' | 'full';
  command: string;
  machine: MachineInfo;
  scenarios: ScenarioResult[];
}

/** An empty result for a scenario, filled in as it runs. */
export function newScenario(name: string, title: string, parameters: Record<string, number | string>): ScenarioResult {
  return { name, title, status: 'ok', parameters, rows: [], bars: [], profiles: [] };
}

/** Rounds for display: 3 significant digits below 100, whole numbers above. */
export function round(n: number): number {
  if (!Number.isFinite(n)) return n;
  if (Math.abs(n) >= 100) return Math.round(n);
  return Number(n.toPrecision(3));
}
