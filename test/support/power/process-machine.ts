import { spawn, type ChildProcess } from 'node:child_process';

/** What a simulated BMC switches: a machine that is on while its process runs. */
export interface SimulatedMachine {
  isOn(): boolean;
  /** Starts the machine; `pxe` says the BMC asked for a network boot this time. */
  powerOn(bootDevice: 'pxe' | 'default'): Promise<void>;
  /** Stops it hard (power cut). */
  powerOff(): Promise<void>;
}

/**
 * A machine that is a process: on = running. `command` gets the boot device, so a QEMU machine can put
 * the NIC first; tests observe `pid`, `boots` and `lastBootDevice`.
 */
export class ProcessMachine implements SimulatedMachine {
  private child: ChildProcess | undefined;
  /** Every power-on, in order, with its boot device. */
  readonly boots: Array<'pxe' | 'default'> = [];

  constructor(private readonly command: (bootDevice: 'pxe' | 'default') => readonly string[]) {}

  get pid(): number | undefined {
    return this.isOn() ? this.child?.pid : undefined;
  }

  isOn(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async powerOn(bootDevice: 'pxe' | 'default'): Promise<void> {
    if (this.isOn()) return;
    const [file, ...args] = this.command(bootDevice);
    if (!file) throw new Error('process-machine: empty command');
    this.boots.push(bootDevice);
    const child = spawn(file, args, { stdio: 'ignore' });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  }

  async powerOff(): Promise<void> {
    const child = this.child;
    if (!child || !this.isOn()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
