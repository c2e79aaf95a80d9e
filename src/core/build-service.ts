import { ConflictError, NotFoundError } from './errors.ts';
import { isBuildFinished, type MachineStatus } from './lifecycle.ts';
import type { Notifier } from './notifier.ts';
import type { Actor, Build } from './types.ts';
import { nowIso } from './types.ts';
import type { Storage } from '../storage/storage.ts';
import type { Kysely } from 'kysely';
import type { Schema } from '../storage/schema.ts';

/** Reading and cancelling builds. Running them is the builder's work (src/builder/). */
export class BuildService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
  ) {}

  async get(id: number): Promise<Build> {
    const build = await this.storage.builds.findById(id);
    if (!build) throw new NotFoundError(`build ${id} not found`);
    return build;
  }

  /** Stops a pending or running build. The builder running it sees the change and kills nix-build. */
  async cancel(id: number, actor: Actor): Promise<Build> {
    const build = await this.get(id);
    if (isBuildFinished(build.status)) throw new ConflictError(`build ${id} is already ${build.status}`);
    const cancelled = await this.storage.transaction(async (trx) => {
      const now = nowIso();
      const updated = await this.storage.builds.transition(
        id,
        ['pending', 'building'],
        'cancelled',
        { completed_at: now, error: `cancelled by ${actor.kind === 'system' ? 'the system' : `${actor.kind} ${actor.name}`}`, lease_owner: null, lease_expires_at: null },
        now,
        trx,
      );
      if (!updated) throw new ConflictError(`build ${id} finished before it could be cancelled`);
      await settleMachineAfterBuild(this.storage, updated.machine_id, trx);
      await this.storage.events.record(
        { kind: 'build.cancelled', machineId: updated.machine_id, buildId: id, actor, message: `build ${id} cancelled` },
        trx,
      );
      return updated;
    });
    this.notifier.emit('build.cancelled', id);
    this.notifier.emit('build.updated', id);
    this.notifier.emit('machine.updated', cancelled.machine_id);
    return cancelled;
  }
}

/**
 * After a build ends without publishing (cancelled), the machine returns to where it stood: ready
 * when it still has an image, else configured or enrolled.
 */
async function settleMachineAfterBuild(storage: Storage, machineId: number, trx: Kysely<Schema>): Promise<void> {
  const machine = await storage.machines.findById(machineId, trx);
  if (!machine || machine.status !== 'building') return;
  const status: MachineStatus = (await storage.machines.imageBuildId(machineId, trx))
    ? 'ready'
    : machine.hostname && machine.nixos_config
      ? 'configured'
      : 'enrolled';
  await storage.machines.update(machineId, { status }, nowIso(), trx);
}
