import { describeAddress, describeBmc, type IpmiTarget } from '../bmc-target.ts';
import type { PowerCallOptions, PowerDriver, PowerState } from '../power-driver.ts';
import { PowerError, trimAnswer } from '../power-error.ts';
import { classifyIpmitoolFailure, runIpmitool, type IpmitoolOutput } from './ipmitool.ts';

export interface IpmiDriverOptions {
  /** Hard limit for one ipmitool run, in ms; the caller's signal may end it sooner. */
  commandTimeoutMs: number;
  /** Defaults to `ipmitool` on PATH. */
  executable?: string;
}

/** Drives a BMC over IPMI 2.0 (lanplus) through ipmitool. */
export class IpmiDriver implements PowerDriver {
  readonly description: string;

  constructor(
    private readonly target: IpmiTarget,
    private readonly options: IpmiDriverOptions,
  ) {
    this.description = describeBmc(target);
  }

  async status(call: PowerCallOptions): Promise<PowerState> {
    const out = await this.run(['chassis', 'power', 'status'], call);
    const m = /Chassis Power is (on|off)\b/i.exec(out.stdout);
    if (!m) throw this.badAnswer(out);
    return m[1]!.toLowerCase() as PowerState;
  }

  async powerOn(call: PowerCallOptions): Promise<void> {
    await this.control('on', call);
  }

  async powerOff(call: PowerCallOptions): Promise<void> {
    await this.control('off', call);
  }

  async powerCycle(call: PowerCallOptions): Promise<void> {
    await this.control('cycle', call);
  }

  async reset(call: PowerCallOptions): Promise<void> {
    await this.control('reset', call);
  }

  async setNextBootPxe(call: PowerCallOptions): Promise<void> {
    const out = await this.run(['chassis', 'bootdev', 'pxe'], call);
    if (!/Set Boot Device to pxe/i.test(out.stdout)) throw this.badAnswer(out);
  }

  async close(): Promise<void> {
    // ipmitool opens and closes its session on every run.
  }

  private async control(verb: 'on' | 'off' | 'cycle' | 'reset', call: PowerCallOptions): Promise<void> {
    const out = await this.run(['chassis', 'power', verb], call);
    if (!/Chassis Power Control:/i.test(out.stdout)) throw this.badAnswer(out);
  }

  private run(command: string[], call: PowerCallOptions): Promise<IpmitoolOutput> {
    return runIpmitool({
      address: this.target.address,
      username: this.target.username,
      password: this.target.password,
      command,
      timeoutMs: this.options.commandTimeoutMs,
      signal: call.signal,
      ...(this.options.executable ? { executable: this.options.executable } : {}),
    });
  }

  /**
   * ipmitool exited 0 without the expected line. Some commands (`chassis bootdev`) report the BMC's
   * refusal only on stderr and still exit 0: that is the BMC's answer, not garbage.
   */
  private badAnswer(out: IpmitoolOutput): PowerError {
    if (/\bfailed:/i.test(out.stderr)) return classifyIpmitoolFailure(describeAddress(this.target.address), out.stdout, out.stderr);
    const answer = trimAnswer(out.stdout) || 'nothing';
    return new PowerError('bad_answer', `ipmi: ${describeAddress(this.target.address)} gave an answer that is not understood: ${answer}`, answer);
  }
}
