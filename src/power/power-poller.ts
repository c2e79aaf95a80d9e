import { createHash } from 'node:crypto';
import type { PowerDriver } from './power-driver.ts';
import { PowerError } from './power-error.ts';
import type { PowerLogger, PowerResult, PowerRunner } from './power-runner.ts';

/** A machine the poller checks: its key (e.g. the machine id) and how to reach its BMC. */
export interface PolledMachine<K> {
  key: K;
  /** e.g. `ABC123`: what log lines about the machine name it by. */
  serviceTag: string;
  /** A fresh driver for one check (the runner closes it). */
  driver(): PowerDriver;
}

/** What the poller needs from its owner: which machines have a BMC, and where their state goes. */
export interface PowerPollerPorts<K> {
  listMachines(): Promise<Array<PolledMachine<K>>>;
  /** Called after every check: the state seen, or the failure (the caller may record `unknown`). */
  record(key: K, outcome: { ok: true; result: PowerResult } | { ok: false; error: PowerError }): Promise<void>;
}

export interface PowerPollerOptions {
  /** How often each machine is checked, in ms; e.g. 300_000 (five minutes). */
  intervalMs: number;
  logger?: PowerLogger;
}

/**
 * Keeps machines' power state fresh. Each round lists the machines and spreads their checks evenly over
 * the interval, in an order fixed by a hash of each key (so a fleet's BMCs are not all asked at once, and a
 * machine is checked about once per interval); the runner bounds how many run at once.
 */
export class PowerPoller<K extends string | number> {
  private timers = new Set<NodeJS.Timeout>();
  private inFlight = new Set<Promise<void>>();
  private running = false;

  constructor(
    private readonly runner: PowerRunner,
    private readonly ports: PowerPollerPorts<K>,
    private readonly options: PowerPollerOptions,
  ) {
    if (!(options.intervalMs >= 1)) throw new RangeError('power poller: intervalMs must be at least 1');
  }

  /** Starts polling: the first round begins now. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.round();
  }

  /** Stops scheduling checks and waits for the ones in flight. */
  async stop(): Promise<void> {
    this.running = false;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.all(this.inFlight);
  }

  /** Checks every machine now (bounded by the runner), e.g. at start-up or from a test. */
  async pollAll(): Promise<void> {
    const machines = await this.ports.listMachines();
    await Promise.all(machines.map((m) => this.check(m)));
  }

  private round(): void {
    if (!this.running) return;
    const listed = this.ports.listMachines().then(
      (machines) => {
        if (!this.running) return;
        const ordered = spreadOrder(machines);
        const gap = this.options.intervalMs / Math.max(ordered.length, 1);
        ordered.forEach((machine, i) => this.later(Math.floor(i * gap), () => void this.check(machine)));
      },
      (err: unknown) => this.options.logger?.warn({ err }, `power: listing machines to poll failed: ${(err as Error).message}`),
    );
    this.track(listed);
    this.later(this.options.intervalMs, () => this.round());
  }

  private check(machine: PolledMachine<K>): Promise<void> {
    const done = (async () => {
      let outcome: Parameters<PowerPollerPorts<K>['record']>[1];
      try {
        outcome = { ok: true, result: await this.runner.run(machine.driver(), { action: 'status' }, { serviceTag: machine.serviceTag }) };
      } catch (err) {
        if (!(err instanceof PowerError)) throw err;
        outcome = { ok: false, error: err };
      }
      await this.ports.record(machine.key, outcome);
    })().catch((err: unknown) =>
      this.options.logger?.warn({ err, service_tag: machine.serviceTag }, `power: polling ${machine.serviceTag} failed: ${(err as Error).message}`),
    );
    this.track(done);
    return done;
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.running) fn();
    }, ms);
    this.timers.add(timer);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

/**
 * The order in which a round checks machines: by a hash of each key, so it is the same from round to round
 * whatever order the machines are listed in, and neighbours in a rack (consecutive ids) are not checked
 * one after another.
 */
export function spreadOrder<M extends { key: string | number }>(machines: readonly M[]): M[] {
  return [...machines].sort((a, b) => spreadKey(a.key) - spreadKey(b.key) || String(a.key).localeCompare(String(b.key)));
}

function spreadKey(key: string | number): number {
  return createHash('sha256').update(String(key)).digest().readUInt32BE(0);
}
