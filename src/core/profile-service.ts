import type { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError, DomainError, InvalidInputError, NotFoundError } from './errors.ts';
import { machinePages } from './machine-pages.ts';
import { allocateHostname, settleConfiguration } from './machine-settings.ts';
import type { Notifier } from './notifier.ts';
import { DuplicateKeyError, StillReferencedError, type Storage } from './ports.ts';
import { assertProfileFields, assertProfileName, type Profile } from './profile.ts';
import { nowIso, type Actor, type Machine } from './types.ts';

/** Profiles: create, read, change (its machines' desired hashes follow in the same transaction), delete. */
export class ProfileService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly lifecycle: Pick<BuildLifecycle, 'nixpkgs'>,
  ) {}

  list(): Promise<Profile[]> {
    return this.storage.profiles.list();
  }

  /** One profile with its machine counts; NotFoundError when none. */
  async get(name: string): Promise<Profile> {
    const found = (await this.storage.profiles.list()).find((p) => p.name === name);
    if (!found) throw new NotFoundError(`profile ${name} not found`);
    return found;
  }

  async create(body: Record<string, unknown>, actor: Actor): Promise<Profile> {
    const name = assertProfileName(body.name);
    const unknown = Object.keys(body).filter((k) => !['name', 'description', 'nixos_config', 'hostname_pattern', 'kernel_params', 'auto_build', 'health_check', 'skip_boot_check'].includes(k));
    if (unknown.length > 0) throw new InvalidInputError(`unknown field ${unknown[0]}`, { field: unknown[0] });
    const f = assertProfileFields(body, true);
    const fields = {
      description: f.description ?? null,
      nixos_config: f.nixos_config!,
      hostname_pattern: f.hostname_pattern ?? null,
      kernel_params: f.kernel_params ?? [],
      auto_build: f.auto_build ?? false,
      health_check: f.health_check ?? null,
      skip_boot_check: f.skip_boot_check ?? false,
    };
    const profile = await this.storage.transaction(async (tx) => {
      let created: Profile;
      try {
        created = await tx.profiles.insert(name, fields, nowIso());
      } catch (err) {
        if (err instanceof DuplicateKeyError) throw new ConflictError(`profile ${name} exists`);
        throw err;
      }
      await tx.events.record({ kind: 'profile.created', actor, message: `profile ${name} created`, data: { profile: name } });
      return created;
    });
    return { ...profile, machines: 0, out_of_date: 0 };
  }

  /**
   * Changes a profile; every machine using it gets its desired hash recomputed in the same
   * transaction, so `out_of_date` names exactly the machines the change touched.
   */
  async update(name: string, body: Record<string, unknown>, actor: Actor): Promise<Profile> {
    const unknown = Object.keys(body).filter((k) => !['description', 'nixos_config', 'hostname_pattern', 'kernel_params', 'auto_build', 'health_check', 'skip_boot_check'].includes(k));
    if (unknown.length > 0) throw new InvalidInputError(`${unknown[0]} cannot be changed here${unknown[0] === 'name' ? ' (a profile keeps its name)' : ''}`, { field: unknown[0] });
    const fields = assertProfileFields(body, false);
    const touched = await this.storage.transaction(async (tx) => {
      const now = nowIso();
      const updated = await tx.profiles.update(name, fields, now);
      if (!updated) throw new NotFoundError(`profile ${name} not found`);
      const users: Machine[] = [];
      for await (const page of machinePages(tx.machines, { profile: name })) users.push(...page);
      let stale = 0;
      let named = 0;
      for (const m of users) {
        // Machines of the profile still without a hostname are named from a pattern it now has.
        if (m.hostname === null && updated.hostname_pattern !== null) {
          try {
            await allocateHostname(tx, m, updated.hostname_pattern, now);
            named++;
          } catch (err) {
            if (!(err instanceof DomainError)) throw err;
            await tx.events.record({ kind: 'machine.updated', machineId: m.id, actor, message: `not named from profile ${name}: ${err.message}`, data: { fields: [] } });
          }
        }
        if ((await settleConfiguration(tx, m.id, this.lifecycle.nixpkgs, now)).out_of_date) stale++;
      }
      await tx.events.record({
        kind: 'profile.updated',
        actor,
        message: `profile ${name} changed (${Object.keys(fields).join(', ') || 'nothing'}); ${stale} of its ${users.length} machines are out of date${named ? `, ${named} named from its pattern` : ''}`,
        data: { profile: name, fields: Object.keys(fields), machines: users.length, out_of_date: stale, named },
      });
      return users.map((m) => m.id);
    });
    for (const id of touched) this.notifier.emit('machine.updated', id);
    return this.get(name);
  }

  /** Deletes a profile no machine and no rule uses (ConflictError naming how many do). */
  async remove(name: string, actor: Actor): Promise<void> {
    await this.storage.transaction(async (tx) => {
      if (!(await tx.profiles.findByName(name))) throw new NotFoundError(`profile ${name} not found`);
      const machines = await tx.machines.list({ profile: name, limit: 1, offset: 0 });
      if (machines.total > 0) throw new ConflictError(`profile ${name} is used by ${machines.total} machine${machines.total === 1 ? '' : 's'}; move them to another profile first`);
      const rules = await tx.rules.countUsingProfile(name);
      if (rules > 0) throw new ConflictError(`profile ${name} is set by ${rules} rule${rules === 1 ? '' : 's'}; change them first`);
      try {
        await tx.profiles.delete(name);
      } catch (err) {
        // A machine or rule took the profile after the checks above, in another transaction.
        if (err instanceof StillReferencedError) throw new ConflictError(`profile ${name} was just put to use; try again to see by what`);
        throw err;
      }
      await tx.events.record({ kind: 'profile.deleted', actor, message: `profile ${name} deleted`, data: { profile: name } });
    });
  }
}
