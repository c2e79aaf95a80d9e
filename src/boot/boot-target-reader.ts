import type { BootKey, BootTarget, BuildBootFacts } from '../core/ports.ts';

/** Where boot facts are read from (the machine and build stores). */
export interface BootTargetSource {
  findBootTarget(key: BootKey, value: string): Promise<BootTarget | undefined>;
  bootFacts(buildId: number): Promise<BuildBootFacts | undefined>;
  findIdByImageKey(imageKey: string): Promise<number | undefined>;
}

export type { BootKey, BootTarget, BuildBootFacts };

/** Most builds a reader remembers; published builds never change, so remembering them is safe. */
const MAX_CACHED_BUILDS = 16384;

/** Most machine lookups a reader remembers at once. */
const MAX_CACHED_MACHINES = 65536;

/**
 * The boot server's reads on its hot path: one small row per script request, and each build's token
 * read once.
 *
 * During a boot storm the same machines ask again every few seconds (hold scripts), so a lookup is
 * remembered for `machineTtlMs`. Changes made in this process clear it at once (`forgetMachines`);
 * changes made by another process are seen within the TTL, which only delays a held machine's boot.
 */
export class BootTargetReader {
  private readonly builds = new Map<number, BuildBootFacts>();
  private readonly imageKeys = new Map<string, number>();
  private readonly machines = new Map<string, { target: BootTarget | undefined; expires: number }>();

  constructor(
    private readonly source: BootTargetSource,
    private readonly machineTtlMs = 0,
  ) {}

  /** Drops every remembered machine lookup (a machine changed). */
  forgetMachines(): void {
    this.machines.clear();
  }

  async findMachine(key: BootKey, value: string): Promise<BootTarget | undefined> {
    if (this.machineTtlMs <= 0) return this.readMachine(key, value);
    const cacheKey = `${key}\u0000${value}`;
    const now = Date.now();
    const cached = this.machines.get(cacheKey);
    if (cached && cached.expires > now) return cached.target;
    const target = await this.readMachine(key, value);
    if (this.machines.size >= MAX_CACHED_MACHINES) this.machines.clear();
    this.machines.set(cacheKey, { target, expires: now + this.machineTtlMs });
    return target;
  }

  private readMachine(key: BootKey, value: string): Promise<BootTarget | undefined> {
    return this.source.findBootTarget(key, value);
  }

  /** The build whose image URLs use `imageKey` (a key never changes its build, so found ones are kept). */
  async buildIdOfImageKey(imageKey: string): Promise<number | undefined> {
    const cached = this.imageKeys.get(imageKey);
    if (cached !== undefined) return cached;
    const id = await this.source.findIdByImageKey(imageKey);
    if (id === undefined) return undefined;
    if (this.imageKeys.size >= MAX_CACHED_BUILDS) this.imageKeys.delete(this.imageKeys.keys().next().value as string);
    this.imageKeys.set(imageKey, id);
    return id;
  }

  async buildFacts(buildId: number): Promise<BuildBootFacts | undefined> {
    const cached = this.builds.get(buildId);
    if (cached) return cached;
    const facts = await this.source.bootFacts(buildId);
    if (!facts) return undefined;
    if (this.builds.size >= MAX_CACHED_BUILDS) this.builds.delete(this.builds.keys().next().value as number);
    this.builds.set(buildId, facts);
    return facts;
  }
}
