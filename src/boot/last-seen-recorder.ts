import { RepeatedFailure } from '../core/repeated-failure.ts';
import type { Logger } from '../core/logger.ts';

/** Where the recorder writes: many machines' last_seen_at in one statement. */
export interface LastSeenWriter {
  touchLastSeen(ids: number[], now: string): Promise<void>;
}

/**
 * Ids per statement: small enough that one write (synchronous with SQLite: about a millisecond for
 * 100 rows) never holds up script requests for long; the recorder lets waiting requests run between
 * two statements.
 */
const BATCH = 100;

/**
 * Collects the machines that asked for a boot script and writes their last_seen_at in one batch
 * every `intervalMs`, so a boot storm costs one write per interval instead of one per request.
 *
 * A machine is written at most once per `resolutionMs`: one that keeps asking (a held machine
 * re-asks every few seconds, a storm many times a second) waits until that much time has passed since
 * its last write, and is then written with the time of that write. So last_seen_at is never more than
 * `resolutionMs` plus one interval behind, and a storm rewrites each row once per `resolutionMs`
 * instead of once an interval, spread over time as the machines were first seen.
 */
export class LastSeenRecorder {
  private pending = new Set<number>();
  /**
   * Which batch `seen` adds to: it changes whenever the batch is taken to be written. A caller that
   * noted this after `seen(id)` knows `id` is still in the batch while it is unchanged, so a machine
   * asking many times a second is added once a batch (`seenOnce`).
   */
  private batch = 0;
  /** When each machine was last written (ms); entries older than `resolutionMs` are dropped now and then. */
  private writtenAt = new Map<number, number>();
  private pruneAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  /** A database outage is logged once, then once a minute, not at every batch. */
  private readonly writeFailures: RepeatedFailure;

  constructor(
    private readonly writer: LastSeenWriter,
    logger: Logger,
    private readonly intervalMs = 1500,
    private readonly resolutionMs = 15_000,
  ) {
    this.writeFailures = new RepeatedFailure(logger, 'boot: could not record last_seen_at', 'boot: last_seen_at is recorded again');
  }

  /** Notes that a machine was seen now; it is written with the next batch (or window, see above). */
  seen(machineId: number): void {
    this.pending.add(machineId);
    this.schedule();
  }

  /**
   * `seen(sighting.machine.id)` for a caller that keeps `sighting` per machine: nothing to do while
   * the machine is already in the batch being collected (a boot storm asks for each machine many
   * times a batch, and this then reads nothing but the mark).
   */
  seenOnce(sighting: { seenInBatch: number; readonly machine: { readonly id: number } }): void {
    if (sighting.seenInBatch === this.batch) return;
    this.seen(sighting.machine.id);
    sighting.seenInBatch = this.batch;
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
    if (now >= this.pruneAt) {
      for (const [id, at] of this.writtenAt) if (now - at >= this.resolutionMs) this.writtenAt.delete(id);
      this.pruneAt = now + this.resolutionMs;
    }
    const ids: number[] = [];
    const waiting = new Set<number>();
    for (const id of this.pending) {
      const last = this.writtenAt.get(id);
      if (all || last === undefined || now - last >= this.resolutionMs) ids.push(id);
      else waiting.add(id);
    }
    this.pending = waiting;
    this.batch += 1;
    if (waiting.size > 0) this.schedule();
    this.flushing = this.flushing.then(async () => {
      if (ids.length === 0) return;
      try {
        const at = new Date();
        for (let i = 0; i < ids.length; i += BATCH) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve));
          const batch = ids.slice(i, i + BATCH);
          await this.writer.touchLastSeen(batch, at.toISOString());
          for (const id of batch) this.writtenAt.set(id, at.getTime());
        }
        this.writeFailures.succeeded();
      } catch (err) {
        this.writeFailures.failed(err, { machines: ids.length });
      }
    });
    return this.flushing;
  }
}
