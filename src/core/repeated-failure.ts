import type { Logger } from './logger.ts';

/** How often a failure that keeps repeating is logged again, milliseconds. */
export const REPEAT_LOG_MS = 60_000;

/**
 * The log of something retried while it fails (a loop reading the database during an outage): the
 * first failure is logged at once, with its error; while it keeps failing, one line a minute says how
 * often and for how long; the first success after failures says it works again. A database that is
 * down for ten minutes costs each loop a dozen lines instead of one a second.
 */
export class RepeatedFailure {
  private failures = 0;
  private since = 0;
  private loggedAt = 0;

  constructor(
    private readonly logger: Logger,
    /** What failed, as the log says it: `boot: could not read machine changes; serving what is known`. */
    private readonly message: string,
    /** What the log says when it works again (then `after N failures in S s`): `boot: machine changes are read again`. */
    private readonly recovered: string,
    private readonly options: { intervalMs?: number; now?: () => number } = {},
  ) {}

  /** One more failure; `fields` are logged with it (when this one is logged). */
  failed(err: unknown, fields: Record<string, unknown> = {}): void {
    const now = (this.options.now ?? Date.now)();
    this.failures += 1;
    if (this.failures === 1) {
      this.since = now;
      this.loggedAt = now;
      this.logger.warn({ err, ...fields }, this.message);
      return;
    }
    if (now - this.loggedAt < (this.options.intervalMs ?? REPEAT_LOG_MS)) return;
    this.loggedAt = now;
    const seconds = Math.round((now - this.since) / 1000);
    this.logger.warn({ err, ...fields, failures: this.failures, failing_seconds: seconds }, `${this.message} (still failing: ${this.failures} times in ${seconds} s)`);
  }

  /** It worked: after failures, one line says so. */
  succeeded(): void {
    if (this.failures === 0) return;
    const seconds = Math.round(((this.options.now ?? Date.now)() - this.since) / 1000);
    this.logger.info({ failures: this.failures, failing_seconds: seconds }, `${this.recovered} after ${this.failures} failure${this.failures === 1 ? '' : 's'} in ${seconds} s`);
    this.failures = 0;
  }
}
