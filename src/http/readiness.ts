/**
 * What keeps a process from taking traffic, as `/readyz` reports it: parts still starting (a
 * process with the api and boot roles binds the API before the boot listener, so readiness on one
 * listener waits for every part of the process), or a stop under way (so a load balancer stops
 * sending before the listeners close). A process nothing was registered with is ready.
 */
export class Readiness {
  private readonly starting = new Set<string>();
  private stopping = false;

  /** Parts that must be up before the process is ready (e.g. `boot listener`). */
  wait(...parts: string[]): void {
    for (const part of parts) this.starting.add(part);
  }

  /** A part is up. */
  up(part: string): void {
    this.starting.delete(part);
  }

  /** The process is stopping: not ready from now on. */
  stop(): void {
    this.stopping = true;
  }

  /** Why the process is not ready, or undefined when it is (the database aside, which `/readyz` asks itself). */
  get reason(): string | undefined {
    if (this.stopping) return 'stopping';
    if (this.starting.size > 0) return `starting: waiting for the ${[...this.starting].join(', ')}`;
    return undefined;
  }
}
