import type { MachineStatus } from '../core/lifecycle.ts';
import { MACHINE_STATUSES } from '../core/lifecycle.ts';
import type { Notifier } from '../core/notifier.ts';
import type { Hardware } from '../core/types.ts';
import type { MachineStore, SummaryRow } from '../core/ports.ts';
import { knownDmiText, totalDiskBytes, viewHardware } from './hardware-view.ts';

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

/** Hardware JSON parsed between two yields to the event loop while summarizing. */
export const SUMMARY_SLICE_BYTES = 512 * 1024;
/** Rows folded between two yields to the event loop while summarizing. */
export const SUMMARY_SLICE_ROWS = 500;

/**
 * summarizeFleet in slices: it yields to the event loop after every SUMMARY_SLICE_ROWS rows or
 * SUMMARY_SLICE_BYTES of hardware JSON, so a large fleet (or large documents) never holds up other
 * requests (a boot script, a health check) for the whole computation.
 */
export async function summarizeFleetInSlices(
  rows: readonly SummaryRow[],
  yieldNow: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
): Promise<FleetSummary> {
  const fold = new FleetFold();
  let rowsInSlice = 0;
  let bytesInSlice = 0;
  for (const row of rows) {
    fold.add(row);
    rowsInSlice += 1;
    bytesInSlice += row.hardware.length;
    if (rowsInSlice >= SUMMARY_SLICE_ROWS || bytesInSlice >= SUMMARY_SLICE_BYTES) {
      rowsInSlice = 0;
      bytesInSlice = 0;
      await yieldNow();
    }
  }
  return fold.result();
}

/** Folds machine rows into fleet totals; hardware that does not parse counts as zero capacity. */
export function summarizeFleet(rows: Iterable<SummaryRow>): FleetSummary {
  const fold = new FleetFold();
  for (const row of rows) fold.add(row);
  return fold.result();
}

class FleetFold {
  private readonly byStatus = Object.fromEntries(MACHINE_STATUSES.map((s) => [s, 0])) as Record<MachineStatus, number>;
  private readonly models = new Map<string, number>();
  private readonly vendors = new Map<string, number>();
  private total = 0;
  private cores = 0;
  private threads = 0;
  private memoryBytes = 0;
  private diskBytes = 0;

  add(row: SummaryRow): void {
    this.total += 1;
    if (row.status in this.byStatus) this.byStatus[row.status as MachineStatus] += 1;
    bump(this.models, knownDmiText(row.model) ?? 'unknown model');
    bump(this.vendors, knownDmiText(row.manufacturer) ?? 'unknown vendor');
    const view = viewHardware(parse(row.hardware));
    this.cores += view.cpu?.cores ?? 0;
    this.threads += view.cpu?.threads ?? view.cpu?.cores ?? 0;
    this.memoryBytes += view.memoryBytes ?? 0;
    this.diskBytes += totalDiskBytes(view);
  }

  result(): FleetSummary {
    const { total, byStatus, cores, threads, memoryBytes, diskBytes } = this;
    return { total, byStatus, cores, threads, memoryBytes, diskBytes, byModel: ranked(this.models), byVendor: ranked(this.vendors) };
  }
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
    return summarizeFleetInSlices(await this.machines.summaryRows());
  }
}
