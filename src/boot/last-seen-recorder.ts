import type { Logger } from '../core/logger.ts';

/** Where the recorder writes: many machines' last_seen_at in one statement. */
export interface LastSeenWriter {
  touchLastSeen(ids: number[], now: string): Promise<void>;
}

/**
 * Ids per statement: small enough that one write (synchronous with SQLite) never holds up script
 * requests for long; the recorder lets waiting requests run between two statements.
 */
const BATCH = 250;

/**
 * Collects the machines that asked for a boot script and writes their last_seen_at in one batch
 * every `intervalMs`, so a boot storm costs one write per interval instead of one per request.
 */
export class LastSeenRecorder {
  private pending = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly writer: LastSeenWriter,
    private readonly logger: Logger,
    private readonly intervalMs = 1500,
  ) {}

  /** Notes that a machine was seen now; it is written with the next batch. */
  seen(machineId: number): void {
    this.pending.add(machineId);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes what was collected so far; resolves when it is stored (errors are logged, not thrown). */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const ids = [...this.pending];
    this.pending = new Set();
    this.flushing = this.flushing.then(async () => {
      if (ids.length === 0) return;
      try {
        const now = new Date().toISOString();
        for (let i = 0; i < ids.length; i += BATCH) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve));
          await this.writer.touchLastSeen(ids.slice(i, i + BATCH), now);
        }
      } catch (err) {
        this.logger.warn({ err, machines: ids.length }, 'boot: could not record last_seen_at');
      }
    });
    return this.flushing;
  }
}
