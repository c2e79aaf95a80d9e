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

/**
 * Narrow, index-backed reads for the boot server's hot path: one small row per script request,
 * and each build's token read once.
 */
export class BootTargetReader {
  private readonly builds = new Map<number, BuildBootFacts>();

  constructor(private readonly db: Kysely<Schema>) {}

  async findMachine(key: BootKey, value: string): Promise<BootTarget | undefined> {
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
