import { ConflictError, NotFoundError } from './errors.ts';
import type { Notifier } from './notifier.ts';
import type { ImageStore, Storage } from './ports.ts';
import { nowIso, type Actor, type Build, type Machine } from './types.ts';

/** Why a machine is pointed at a build: an operator's rollback, or a rollout's wave. */
export interface PointOptions {
  /** e.g. `rolled back to build 41` (the event's message). */
  message: string;
  /** The event kind, e.g. `machine.rolled_back`, `rollout.machine_updated`. */
  kind: string;
  /** Ask the machine's in-image agent to reboot into it (reboot method `agent`). */
  requestAgentReboot?: boolean;
  rolloutId?: number;
}

/**
 * What a machine boots: the one path that points a machine at one of its published builds, used by
 * rollbacks and by rollout waves alike. The database row (`image_build_id`, which the boot server's
 * table follows through the change feed) and the `machines/<tag>` link change together; a build whose
 * image retention deleted is refused.
 */
export class MachineImageService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly images: Pick<ImageStore, 'pointMachineAt'>,
    private readonly machines: { get(ref: string): Promise<Machine> },
  ) {}

  /**
   * Points the machine at `buildId` (null: at no image, for a machine that had none). ConflictError
   * when the build is not one of its successful builds or its image was swept.
   */
  async pointAt(machineId: number, buildId: number | null, actor: Actor, options: PointOptions): Promise<void> {
    const tag = await this.storage.transaction(async (tx) => {
      const machine = await tx.machines.findById(machineId);
      if (!machine) throw new NotFoundError(`machine ${machineId} not found`);
      if (buildId !== null) {
        // Locked until the end (PostgreSQL): retention's sweep of this build waits, then sees the machine on it.
        const build = await tx.builds.findRecord(buildId);
        if (!build || build.machine_id !== machine.id) throw new ConflictError(`build ${buildId} is not a build of ${machine.service_tag}`);
        if (build.status !== 'success') throw new ConflictError(`build ${buildId} of ${machine.service_tag} is ${build.status}; only a successful build can be booted`);
        if (build.image_swept_at !== null) {
          throw new ConflictError(`build ${buildId} of ${machine.service_tag} cannot be booted: its image was deleted by retention (METAL_KEEP_BUILDS) at ${build.image_swept_at}`);
        }
      }
      const now = nowIso();
      await tx.machines.update(machine.id, { image_build_id: buildId, ...(options.requestAgentReboot ? { reboot_requested_at: now } : {}) }, now);
      await tx.events.record({
        kind: options.kind,
        machineId: machine.id,
        buildId,
        actor,
        message: options.message,
        data: { build_id: buildId, ...(options.rolloutId !== undefined ? { rollout_id: options.rolloutId } : {}) },
      });
      return machine.service_tag;
    });
    await this.images.pointMachineAt(tag, buildId);
    this.notifier.emit('machine.updated', machineId);
  }

  /**
   * Points the machine back at an earlier successful build: `buildId`, or by default the newest one
   * before the build it boots now. ConflictError (with the reason) when there is none, when it was
   * swept, or while a rollout holds the machine.
   */
  async rollback(ref: string, buildId: number | undefined, actor: Actor): Promise<{ machine: Machine; build_id: number; previous_build_id: number | null }> {
    const machine = await this.machines.get(ref);
    const current = await this.storage.machines.imageBuildId(machine.id);
    const held = await this.storage.rollouts.activeFor([machine.id]);
    if (held.length > 0) {
      throw new ConflictError(`${machine.service_tag} is in rollout ${held[0]!.rollout_id}; pause or cancel the rollout before rolling the machine back`);
    }
    let target: number;
    if (buildId !== undefined) {
      if (buildId === current) throw new ConflictError(`${machine.service_tag} already boots build ${buildId}`);
      target = buildId;
    } else {
      const earlier = (await this.successfulBuilds(machine.id)).filter((b) => current === null || b.id < current);
      const previous = earlier[0];
      if (!previous) {
        throw new ConflictError(
          current === null
            ? `${machine.service_tag} has no image to roll back from`
            : `${machine.service_tag} has no successful build before build ${current} to roll back to`,
        );
      }
      target = previous.id;
    }
    await this.pointAt(machine.id, target, actor, {
      kind: 'machine.rolled_back',
      message: `${machine.service_tag} rolled back from build ${current ?? 'none'} to build ${target}`,
    });
    return { machine: await this.machines.get(`id:${machine.id}`), build_id: target, previous_build_id: current };
  }

  /**
   * The machine's builds that it could boot instead of its current one (successful, image still
   * published, not the current one), newest first: the dashboard's "boot this build".
   */
  async bootableBuilds(machineId: number): Promise<number[]> {
    const current = await this.storage.machines.imageBuildId(machineId);
    return (await this.successfulBuilds(machineId)).filter((b) => b.id !== current && b.image_swept_at === null).map((b) => b.id);
  }

  /** Successful builds of the machine, newest first (swept ones included). */
  private async successfulBuilds(machineId: number): Promise<Build[]> {
    const found: Build[] = [];
    for (let offset = 0; ; offset += 500) {
      const page = await this.storage.builds.listForMachine(machineId, 500, offset);
      found.push(...page.items.filter((b) => b.status === 'success'));
      if (offset + 500 >= page.total) return found;
    }
  }
}
