import type { MachineStatus } from '../core/lifecycle.ts';
import { MACHINE_STATUSES } from '../core/lifecycle.ts';
import type { Notifier } from '../core/notifier.ts';
import type { Hardware } from '../core/types.ts';
import type { MachineStore, SummaryRow } from '../core/ports.ts';
import { totalDiskBytes, viewHardware } from './hardware-view.ts';

/** The numbers on the fleet overview. */
export interface FleetSummary {
  total: number;
  byStatus: Record<MachineStatus, number>;
  cores: number;
  threads: number;
  memoryBytes: number;
  diskBytes: number;
  /** Largest groups first, e.g. `[["PowerEdge R740", 12], …]`. */
  byModel: Array<[string, number]>;
  byVendor: Array<[string, number]>;
}

/** Folds machine rows into fleet totals; hardware that does not parse counts as zero capacity. */
export function summarizeFleet(rows: Iterable<SummaryRow>): FleetSummary {
  const byStatus = Object.fromEntries(MACHINE_STATUSES.map((s) => [s, 0])) as Record<MachineStatus, number>;
  const models = new Map<string, number>();
  const vendors = new Map<string, number>();
  let total = 0;
  let cores = 0;
  let threads = 0;
  let memoryBytes = 0;
  let diskBytes = 0;
  for (const row of rows) {
    total += 1;
    if (row.status in byStatus) byStatus[row.status as MachineStatus] += 1;
    bump(models, row.model ?? 'unknown model');
    bump(vendors, row.manufacturer ?? 'unknown vendor');
    const view = viewHardware(parse(row.hardware));
    cores += view.cpu?.cores ?? 0;
    threads += view.cpu?.threads ?? view.cpu?.cores ?? 0;
    memoryBytes += view.memoryBytes ?? 0;
    diskBytes += totalDiskBytes(view);
  }
  return { total, byStatus, cores, threads, memoryBytes, diskBytes, byModel: ranked(models), byVendor: ranked(vendors) };
}

function parse(json: string): Hardware | undefined {
  try {
    return JSON.parse(json) as Hardware;
  } catch {
    return undefined;
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function ranked(map: Map<string, number>): Array<[string, number]> {
  return [...map.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/**
 * The fleet summary, computed once and kept until a machine changes (or it is older than `maxAgeMs`,
 * for changes made by other processes), so the overview stays cheap with thousands of machines.
 */
export class FleetSummaryCache {
  private current: Promise<FleetSummary> | undefined;
  private computedAt = 0;
  private readonly invalidate = () => {
    this.current = undefined;
  };

  constructor(
    private readonly machines: Pick<MachineStore, 'summaryRows'>,
    private readonly notifier: Notifier,
    private readonly maxAgeMs = 15_000,
  ) {
    notifier.on('machine.updated', this.invalidate);
  }

  get(): Promise<FleetSummary> {
    if (!this.current || Date.now() - this.computedAt > this.maxAgeMs) {
      this.computedAt = Date.now();
      const computing = this.compute();
      this.current = computing;
      computing.catch(() => {
        if (this.current === computing) this.current = undefined;
      });
    }
    return this.current;
  }

  /** Stops listening for machine changes. */
  close(): void {
    this.notifier.off('machine.updated', this.invalidate);
  }

  private async compute(): Promise<FleetSummary> {
    return summarizeFleet(await this.machines.summaryRows());
  }
}
