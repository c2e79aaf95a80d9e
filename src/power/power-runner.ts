import { ConcurrencyLimit } from './concurrency-limit.ts';
import type { PowerAction, PowerCallOptions, PowerDriver, PowerState } from './power-driver.ts';
import { PowerError } from './power-error.ts';

/** What an action asks for. */
export interface PowerRequest {
  action: PowerAction;
  /** `pxe`: the next boot goes to the network (set before on, cycle or reset). */
  bootDevice?: 'pxe';
}

/** The state after an action, as the BMC reported it. */
export interface PowerResult {
  powerState: PowerState;
  checkedAt: Date;
}

/** One BMC call the runner made, for logs and the machine's events. */
export interface PowerStep {
  /** e.g. `ipmi 10.0.0.21:623` */
  bmc: string;
  /** e.g. `set_boot_pxe`, `power_on`, `status` */
  step: 'status' | 'power_on' | 'power_off' | 'power_cycle' | 'reset' | 'set_boot_pxe';
  attempt: number;
  outcome: 'ok' | 'failed';
  /** The failure's message, naming the BMC's answer. */
  message?: string;
  /** The failure's stable code, e.g. `bmc_timeout`. */
  code?: string;
}

/** The part of a pino logger the runner uses. */
export interface PowerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PowerRunnerOptions {
  /** BMC calls in flight at once, across all machines (METAL_POWER_CONCURRENCY). */
  concurrency: number;
  /** Limit for one BMC call, in ms; a call that reaches it fails with `timeout`. */
  callTimeoutMs: number;
  /** Pause before the one retry, in ms. */
  retryDelayMs?: number;
  /** How long to watch for the state an action leads to (on after on/cycle/reset, off after off), in ms. */
  settleTimeoutMs?: number;
  /** Pause between status checks while watching, in ms. */
  settleIntervalMs?: number;
  logger?: PowerLogger;
  /** Told about every BMC call, e.g. to record the machine's events. */
  onStep?: (step: PowerStep) => void;
  now?: () => Date;
}

/** Who a run is for and what it reports besides its result. */
export interface RunHooks {
  /** The machine's service tag, e.g. `ABC123`: every log line of the run names it. */
  serviceTag?: string;
  /** Told about every BMC call of this run (after the runner's own `onStep`), e.g. for one machine's events. */
  onStep?: (step: PowerStep) => void;
}

/** Per-machine outcome of a bulk run. */
export type PowerOutcome<K> = { key: K; ok: true; result: PowerResult } | { key: K; ok: false; error: PowerError };

type Step = PowerStep['step'];

/**
 * Runs power actions: each BMC call with a timeout and one retry, at most `concurrency` calls at once,
 * and after a change the state is watched until it matches (or the watch ends) so the result is the
 * state after the action.
 */
export class PowerRunner {
  private readonly limit: ConcurrencyLimit;
  private readonly options: Required<Omit<PowerRunnerOptions, 'logger' | 'onStep'>> & Pick<PowerRunnerOptions, 'logger' | 'onStep'>;

  constructor(options: PowerRunnerOptions) {
    this.limit = new ConcurrencyLimit(options.concurrency);
    this.options = {
      retryDelayMs: 500,
      settleTimeoutMs: 30_000,
      settleIntervalMs: 1000,
      now: () => new Date(),
      ...options,
    };
  }

  /** BMC calls in flight now. */
  get callsInFlight(): number {
    return this.limit.running;
  }

  /**
   * Performs one action on one machine. `on` and `off` on a machine already in that state change
   * nothing; `cycle` on a machine that is off powers it on (it ends up running either way). Throws
   * PowerError when the BMC fails twice (or once, for failures a retry cannot fix); a failure that is not
   * the BMC's (ipmitool not installed) is thrown as it is.
   */
  async run(driver: PowerDriver, request: PowerRequest, hooks: RunHooks = {}): Promise<PowerResult> {
    const call = <T>(step: Step, fn: (o: PowerCallOptions) => Promise<T>) => this.call(driver, step, fn, hooks);
    try {
      const pxe = request.bootDevice === 'pxe';
      switch (request.action) {
        case 'status':
          break;
        case 'on':
        case 'off': {
          // Already there: nothing to do (many BMCs answer "already on" with an error).
          const before = await call('status', (o) => driver.status(o));
          if (before === request.action) return { powerState: before, checkedAt: this.options.now() };
          if (request.action === 'off') {
            await call('power_off', (o) => driver.powerOff(o));
            return await this.settle(driver, 'off', hooks);
          }
          if (pxe) await this.setNextBootPxe(driver, hooks);
          await call('power_on', (o) => driver.powerOn(o));
          return await this.settle(driver, 'on', hooks);
        }
        case 'cycle':
        case 'reset': {
          if (pxe) await this.setNextBootPxe(driver, hooks);
          const before = await call('status', (o) => driver.status(o));
          if (before === 'off' && request.action === 'cycle') {
            await call('power_on', (o) => driver.powerOn(o));
          } else if (request.action === 'cycle') {
            await call('power_cycle', (o) => driver.powerCycle(o));
          } else {
            await call('reset', (o) => driver.reset(o));
          }
          return await this.settle(driver, 'on', hooks);
        }
      }
      return { powerState: await call('status', (o) => driver.status(o)), checkedAt: this.options.now() };
    } finally {
      await driver.close();
    }
  }

  /**
   * Runs the same action on many machines, bounded by the shared limit; every machine gets an outcome.
   * Rejects only for a failure that is not a BMC's (ipmitool not installed), which would fail them all.
   */
  async runMany<K>(targets: Array<{ key: K; driver: PowerDriver; serviceTag?: string }>, request: PowerRequest): Promise<Array<PowerOutcome<K>>> {
    return Promise.all(
      targets.map(async ({ key, driver, serviceTag }): Promise<PowerOutcome<K>> => {
        try {
          return { key, ok: true, result: await this.run(driver, request, serviceTag === undefined ? {} : { serviceTag }) };
        } catch (err) {
          return { key, ok: false, error: asPowerError(err, driver) };
        }
      }),
    );
  }

  /**
   * Asks for a PXE boot next. A BMC that refuses (no boot override support) does not stop the action:
   * machines that netboot first in their boot order still come up in their new image; the refusal is a
   * failed step in the report.
   */
  private async setNextBootPxe(driver: PowerDriver, hooks: RunHooks): Promise<void> {
    try {
      await this.call(driver, 'set_boot_pxe', (o) => driver.setNextBootPxe(o), hooks);
    } catch (err) {
      if (!(err instanceof PowerError && err.kind === 'refused')) throw err;
    }
  }

  /** Checks the state until it is `want` or the watch ends; returns the last state seen. */
  private async settle(driver: PowerDriver, want: PowerState, hooks: RunHooks): Promise<PowerResult> {
    const deadline = Date.now() + this.options.settleTimeoutMs;
    for (;;) {
      const state = await this.call(driver, 'status', (o) => driver.status(o), hooks);
      if (state === want || Date.now() + this.options.settleIntervalMs > deadline) return { powerState: state, checkedAt: this.options.now() };
      await delay(this.options.settleIntervalMs);
    }
  }

  /**
   * One BMC call: within the concurrency limit, with a timeout, retried once. Cycle and reset are retried
   * only when nothing answered, so a slow BMC is never told to cycle twice.
   */
  private async call<T>(driver: PowerDriver, step: Step, fn: (o: PowerCallOptions) => Promise<T>, hooks: RunHooks): Promise<T> {
    const retryOn = (err: PowerError) => (step === 'power_cycle' || step === 'reset' ? err.kind === 'unreachable' : err.isRetryable);
    for (let attempt = 1; ; attempt++) {
      try {
        const value = await this.limit.run(() => withDeadline(this.options.callTimeoutMs, (signal) => fn({ signal })));
        this.report({ bmc: driver.description, step, attempt, outcome: 'ok' }, hooks);
        return value;
      } catch (err) {
        const error = asPowerError(err, driver);
        this.report({ bmc: driver.description, step, attempt, outcome: 'failed', message: error.message, code: error.code }, hooks);
        if (attempt >= 2 || !retryOn(error)) throw error;
        await delay(this.options.retryDelayMs);
      }
    }
  }

  private report(step: PowerStep, hooks: RunHooks): void {
    // e.g. `power: ABC123 (ipmi 10.0.0.21:623) power_on failed: …`; a run for no machine names the BMC alone.
    const who = hooks.serviceTag === undefined ? step.bmc : `${hooks.serviceTag} (${step.bmc})`;
    const fields = hooks.serviceTag === undefined ? step : { service_tag: hooks.serviceTag, ...step };
    if (step.outcome === 'ok') this.options.logger?.info(fields, `power: ${who} ${step.step}`);
    else this.options.logger?.warn(fields, `power: ${who} ${step.step} failed: ${step.message}`);
    this.options.onStep?.(step);
    hooks.onStep?.(step);
  }
}

/** Any failure as a PowerError; an AbortSignal timeout becomes `timeout`. */
function asPowerError(err: unknown, driver: PowerDriver): PowerError {
  if (err instanceof PowerError) return err;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new PowerError('timeout', `power: ${driver.description} did not answer in time`);
  }
  throw err;
}

/**
 * Runs `fn` with a signal that aborts after `ms`. A referenced timer (unlike AbortSignal.timeout), so a
 * process waiting only on a silent BMC still reaches the deadline instead of exiting.
 */
async function withDeadline<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new PowerError('timeout', 'power: the call reached its time limit')), ms);
  try {
    return await fn(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
