import type { Kysely } from 'kysely';
import type { Schema } from '../storage/schema.ts';

/** The few facts about a machine a boot decision needs. */
export interface BootTarget {
  id: number;
  /** e.g. `ABC123` */
  serviceTag: string;
  /** e.g. `building` */
  status: string;
  /** The build whose image the machine boots, if one is published. */
  imageBuildId: number | null;
}

/** A published build's owner and the token on its kernel line. */
export interface BuildBootFacts {
  machineId: number;
  bootToken: string;
}

/** How a script request names a machine. */
export type BootKey = 'service_tag' | 'mac_address' | 'system_uuid';

/** Most builds a reader remembers; published builds never change, so remembering them is safe. */
const MAX_CACHED_BUILDS = 16384;

/** Most machine lookups a reader remembers at once. */
const MAX_CACHED_MACHINES = 65536;

/**
 * Narrow, index-backed reads for the boot server's hot path: one small row per script request,
 * and each build's token read once.
 *
 * During a boot storm the same machines ask again every few seconds (hold scripts), so a lookup is
 * remembered for `machineTtlMs`. Changes made in this process clear it at once (`forgetMachines`);
 * changes made by another process are seen within the TTL, which only delays a held machine's boot.
 */
export class BootTargetReader {
  private readonly builds = new Map<number, BuildBootFacts>();
  private readonly machines = new Map<string, { target: BootTarget | undefined; expires: number }>();

  constructor(
    private readonly db: Kysely<Schema>,
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

  private async readMachine(key: BootKey, value: string): Promise<BootTarget | undefined> {
    const row = await this.db
      .selectFrom('machines')
      .select(['id', 'service_tag', 'status', 'image_build_id'])
      .where(key, '=', value)
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: Number(row.id),
      serviceTag: row.service_tag,
      status: row.status,
      imageBuildId: row.image_build_id === null ? null : Number(row.image_build_id),
    };
  }

  async buildFacts(buildId: number): Promise<BuildBootFacts | undefined> {
    const cached = this.builds.get(buildId);
    if (cached) return cached;
    const row = await this.db.selectFrom('builds').select(['machine_id', 'boot_token']).where('id', '=', buildId).executeTakeFirst();
    if (!row) return undefined;
    const facts = { machineId: Number(row.machine_id), bootToken: row.boot_token };
    if (this.builds.size >= MAX_CACHED_BUILDS) this.builds.delete(this.builds.keys().next().value as number);
    this.builds.set(buildId, facts);
    return facts;
  }
}
