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
 *
 * A machine is written at most once per `resolutionMs`: one that keeps asking (a held machine
 * re-asks every few seconds, a storm many times a second) waits for the next window, and is then
 * written with the time of that write. So last_seen_at is never more than `resolutionMs` plus one
 * interval behind, and a storm rewrites each row once a window instead of once an interval.
 */
export class LastSeenRecorder {
  private pending = new Set<number>();
  /** Machines written in the current window, and when the window ends. */
  private written = new Set<number>();
  private windowEnds = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly writer: LastSeenWriter,
    private readonly logger: Logger,
    private readonly intervalMs = 1500,
    private readonly resolutionMs = 15_000,
  ) {}

  /** Notes that a machine was seen now; it is written with the next batch (or window, see above). */
  seen(machineId: number): void {
    this.pending.add(machineId);
    this.schedule();
  }

  /** Writes every sighting collected so far; resolves when it is stored (errors are logged, not thrown). */
  flush(): Promise<void> {
    return this.write(true);
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write(false);
    }, this.intervalMs);
    this.timer.unref();
  }

  private write(all: boolean): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = Date.now();
    if (now >= this.windowEnds) {
      this.written = new Set();
      this.windowEnds = now + this.resolutionMs;
    }
    const ids: number[] = [];
    const waiting = new Set<number>();
    for (const id of this.pending) {
      if (all || !this.written.has(id)) ids.push(id);
      else waiting.add(id);
    }
    this.pending = waiting;
    if (waiting.size > 0) this.schedule();
    const written = this.written;
    this.flushing = this.flushing.then(async () => {
      if (ids.length === 0) return;
      try {
        const at = new Date().toISOString();
        for (let i = 0; i < ids.length; i += BATCH) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve));
          const batch = ids.slice(i, i + BATCH);
          await this.writer.touchLastSeen(batch, at);
          for (const id of batch) written.add(id);
        }
      } catch (err) {
        this.logger.warn({ err, machines: ids.length }, 'boot: could not record last_seen_at');
      }
    });
    return this.flushing;
  }
}
