/** Where a batch of log text goes (the build's `log_output`). */
export type LogSink = (text: string) => Promise<void>;

/**
 * Collects a build's output and appends it in batches (one write per interval), so a chatty
 * nix-build costs a handful of updates a second. Stops storing at `maxBytes` with a note.
 */
export class BuildLogWriter {
  private pending = '';
  private stored = 0;
  private truncated = false;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly sink: LogSink,
    private readonly options: { intervalMs: number; maxBytes: number; onFlushed?: () => void },
  ) {}

  /** Queues text; it reaches the sink within one interval. */
  write(text: string): void {
    if (this.truncated || text === '') return;
    const room = this.options.maxBytes - this.stored - Buffer.byteLength(this.pending);
    if (Buffer.byteLength(text) > room) {
      this.pending += Buffer.from(text).subarray(0, Math.max(0, room)).toString('utf8').replace(/\uFFFD+$/, '');
      this.pending += `\n[log truncated: only the first ${this.options.maxBytes} bytes are kept]\n`;
      this.truncated = true;
    } else {
      this.pending += text;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.options.intervalMs);
  }

  /** Writes whatever is queued now; resolves when it is stored. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const text = this.pending;
    this.pending = '';
    if (text !== '') {
      this.chain = this.chain.then(async () => {
        try {
          await this.sink(text);
          this.stored += Buffer.byteLength(text);
          this.options.onFlushed?.();
        } catch (err) {
          this.failure ??= err;
        }
      });
    }
    return this.chain;
  }

  /** The first error the sink raised, if any (the log is best effort; the build goes on). */
  get error(): unknown {
    return this.failure;
  }
}
