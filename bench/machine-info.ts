import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { nginxVersion } from './nginx-process.ts';

/** The machine a run was measured on; every result file carries it, since numbers mean nothing without it. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  nginx: string | null;
  wrk: string | null;
  /** 1, 5 and 15 minute load averages when the run started. */
  loadAverageAtStart: [number, number, number];
}

/** Describes this machine and the tool versions in use. */
export function describeMachine(): MachineInfo {
  const [one = 0, five = 0, fifteen = 0] = loadavg();
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    nginx: nginxVersion() ?? null,
    wrk: wrkVersion() ?? null,
    loadAverageAtStart: [one, five, fifteen],
  };
}

function wrkVersion(): string | undefined {
  try {
    execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  } catch (err) {
    // wrk prints its version and usage, then exits 1.
    const out = (err as { stdout?: string }).stdout ?? '';
    return out.match(/^wrk \S+/)?.[0];
  }
  return undefined;
}
