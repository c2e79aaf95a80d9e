import type { ImageStore, Storage } from './ports.ts';
import { nowIso } from './types.ts';

/** What one retention pass did. */
export interface RetentionOutcome {
  /** Builds whose published image was deleted. */
  swept: number[];
  /** Builds already marked swept whose files were still there (a process stopped between the two). */
  leftovers: number[];
}

/** Build ids per query when looking for leftovers. */
const LEFTOVER_BATCH = 500;

/**
 * Retention of published images (METAL_KEEP_BUILDS): per machine the newest `keep` successful builds
 * stay, plus any build a machine boots and any an active rollout may still point a machine at; the
 * others' images are deleted and the build rows marked `image_swept_at`. Each build is re-checked and
 * marked in its own transaction (its row locked on PostgreSQL, so a concurrent rollback to it either
 * lands first and keeps it, or finds it swept and is refused), then its files are removed. Safe to run
 * from several builders at once: a build is marked once, and removing files twice is harmless.
 * A process that stopped between the mark and the removal leaves files behind: the first sweep of each
 * process removes the directories of builds already marked swept.
 */
export class BuildRetention {
  constructor(
    private readonly storage: Storage,
    private readonly images: Pick<ImageStore, 'removeBuildImage' | 'publishedBuildIds'>,
    /** METAL_KEEP_BUILDS */
    private readonly keep: number,
  ) {}

  private leftoversChecked = false;

  async sweep(): Promise<RetentionOutcome> {
    const leftovers = this.leftoversChecked ? [] : await this.removeLeftovers();
    this.leftoversChecked = true;
    const published = await this.storage.builds.publishedImages();
    const needed = new Set(await this.storage.rollouts.activeBuildIds());
    const seen = new Map<number, number>();
    const candidates: number[] = [];
    for (const b of published) {
      const rank = (seen.get(b.machine_id) ?? 0) + 1;
      seen.set(b.machine_id, rank);
      if (rank > this.keep && !needed.has(b.id)) candidates.push(b.id);
    }
    const swept: number[] = [];
    for (const id of candidates) {
      const marked = await this.storage.transaction(async (tx) => {
        const build = await tx.builds.findRecord(id);
        if (!build || build.status !== 'success' || build.image_swept_at !== null) return false;
        if ((await tx.machines.pointingAt(id)).length > 0) return false;
        if ((await tx.rollouts.activeBuildIds()).includes(id)) return false;
        if (!(await tx.builds.markImageSwept(id, nowIso()))) return false;
        await tx.events.record({
          kind: 'build.image_swept',
          machineId: build.machine_id,
          buildId: id,
          actor: { kind: 'system', name: 'system' },
          message: `the image of build ${id} was deleted (METAL_KEEP_BUILDS keeps the newest ${this.keep} per machine)`,
        });
        return true;
      });
      if (!marked) continue;
      await this.images.removeBuildImage(id);
      swept.push(id);
    }
    return { swept, leftovers };
  }

  private async removeLeftovers(): Promise<number[]> {
    const onDisk = await this.images.publishedBuildIds();
    const removed: number[] = [];
    for (let i = 0; i < onDisk.length; i += LEFTOVER_BATCH) {
      for (const id of await this.storage.builds.sweptAmong(onDisk.slice(i, i + LEFTOVER_BATCH))) {
        await this.images.removeBuildImage(id);
        removed.push(id);
      }
    }
    return removed;
  }
}
