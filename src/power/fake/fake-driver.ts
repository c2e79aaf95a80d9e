import type { PowerCallOptions, PowerDriver, PowerState } from '../power-driver.ts';
import { PowerError, type PowerErrorKind } from '../power-error.ts';

/** A call the fake received, in order. */
export type FakeCall = 'status' | 'on' | 'off' | 'cycle' | 'reset' | 'pxe';

/**
 * An in-memory BMC for tests of code that uses a PowerDriver: it keeps a power state, records every
 * call, and can be told to fail, or to hang until the caller's deadline.
 */
export class FakePowerDriver implements PowerDriver {
  readonly description: string;
  readonly calls: FakeCall[] = [];
  state: PowerState;
  /** Whether the next boot goes to PXE (set by setNextBootPxe, consumed by a power-on). */
  nextBootPxe = false;
  /** Boots that started with PXE, counted. */
  pxeBoots = 0;
  private readonly failures: Array<{ kind: PowerErrorKind; times: number }> = [];
  private hangs = 0;
  closed = false;

  constructor(options: { name?: string; state?: PowerState } = {}) {
    this.description = `fake ${options.name ?? 'bmc'}`;
    this.state = options.state ?? 'off';
  }

  /** The next `times` calls fail with this kind. */
  failNext(kind: PowerErrorKind, times = 1): this {
    this.failures.push({ kind, times });
    return this;
  }

  /** The next `times` calls never answer: they end only when the caller's signal aborts. */
  hangNext(times = 1): this {
    this.hangs += times;
    return this;
  }

  async status(call: PowerCallOptions): Promise<PowerState> {
    await this.enter('status', call);
    return this.state;
  }

  async powerOn(call: PowerCallOptions): Promise<void> {
    await this.enter('on', call);
    if (this.state !== 'on') this.boot();
  }

  async powerOff(call: PowerCallOptions): Promise<void> {
    await this.enter('off', call);
    this.state = 'off';
  }

  async powerCycle(call: PowerCallOptions): Promise<void> {
    await this.enter('cycle', call);
    if (this.state !== 'on') throw new PowerError('refused', `${this.description}: cannot cycle a machine that is off`, 'not in present state');
    this.boot();
  }

  async reset(call: PowerCallOptions): Promise<void> {
    await this.enter('reset', call);
    if (this.state !== 'on') throw new PowerError('refused', `${this.description}: cannot reset a machine that is off`, 'not in present state');
    this.boot();
  }

  async setNextBootPxe(call: PowerCallOptions): Promise<void> {
    await this.enter('pxe', call);
    this.nextBootPxe = true;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private boot(): void {
    this.state = 'on';
    if (this.nextBootPxe) this.pxeBoots += 1;
    this.nextBootPxe = false;
  }

  private async enter(call: FakeCall, options: PowerCallOptions): Promise<void> {
    this.calls.push(call);
    if (this.hangs > 0) {
      this.hangs -= 1;
      await new Promise<void>((_resolve, reject) => {
        const onAbort = () => reject(new PowerError('timeout', `${this.description}: no answer in time`));
        if (options.signal.aborted) onAbort();
        else options.signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    const failure = this.failures[0];
    if (failure) {
      failure.times -= 1;
      if (failure.times <= 0) this.failures.shift();
      throw new PowerError(failure.kind, `${this.description}: simulated ${failure.kind}`);
    }
  }
}
