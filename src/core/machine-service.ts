import { assertLabels, type Labels } from './labels.ts';
import type { ImageStore } from './ports.ts';
import type { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError, InvalidInputError, NotFoundError } from './errors.ts';
import type { Notifier } from './notifier.ts';
import type { Actor, Build, Hardware, Machine } from './types.ts';
import { allocateHostname, profileFor, settleConfiguration } from './machine-settings.ts';
import { assertProfileName } from './profile.ts';
import { describeClaim, describeConflict, enrollIn, ownableUuid, type EnrollOutcome } from './enrollment-decision.ts';
import { nowIso } from './types.ts';
import { assertConfigFiles, ENTRY_FILE, sameConfigFiles, singleFileConfig, type ConfigFiles } from './config-files.ts';
import {
  assertDescription,
  assertHostname,
  assertNixosConfig,
  assertServiceTag,
  isPlaceholderSerial,
  isPlaceholderUuid,
  isRowId,
  normalizeMac,
} from './validation.ts';
import { DuplicateKeyError, type MachineFilter, type Storage, type Stores } from './ports.ts';
import { applyRulesAtEnrollment } from './rule-service.ts';

/** A plain number as an id is written: no sign, no leading zero (`012` is only ever a service tag). */
const PLAIN_ID = /^[1-9]\d{0,14}$/;
/** What a service tag may look like (see assertServiceTag). */
const SERVICE_TAG_REF = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** How to name a machine by its service tag in a URL: `tag:12` when the tag alone would read as an id. */
export function machineRef(serviceTag: string): string {
  return PLAIN_ID.test(serviceTag) ? `tag:${serviceTag}` : serviceTag;
}

export interface EnrollInput {
  service_tag: string;
  mac_address: string;
  hardware: Hardware;
}

export interface MachineUpdate {
  /** A profile's name, or null to remove it. */
  profile?: string | null;
  hostname?: string | null;
  description?: string | null;
  /** The entry text alone: the configuration becomes this one file. */
  nixos_config?: string | null;
  /** The whole configuration, file name → text, with `configuration.nix` (see config-files.ts). */
  nixos_files?: Record<string, string> | null;
  /** The whole label map; `{}` removes every label. */
  labels?: unknown;
}

/** Machine lifecycle: enrollment, configuration, build requests, removal. */
export class MachineService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly images: Pick<ImageStore, 'removeMachineImages'>,
    private readonly builds: BuildLifecycle,
  ) {}

  /**
   * Registers a new machine (created: true) or refreshes a known one's hardware and last_seen_at.
   * A MAC or UUID that is not the known machine's, or that another machine holds, is an identity
   * conflict: nothing but the flag changes (a new tag is created flagged, owning none of the disputed
   * values), an event is recorded, and ConflictError is thrown once that is stored.
   */
  async enroll(input: EnrollInput, actor: Actor, address: string | null = null): Promise<{ machine: Machine; created: boolean }> {
    const serviceTag = assertServiceTag(input.service_tag);
    if (isPlaceholderSerial(serviceTag) || isPlaceholderUuid(serviceTag)) {
      throw new InvalidInputError(
        `service_tag ${JSON.stringify(serviceTag)} is a vendor placeholder, not a serial; send the SMBIOS UUID or the MAC instead`,
        { field: 'service_tag' },
      );
    }
    const claim = { serviceTag, mac: normalizeMac(input.mac_address), uuid: ownableUuid(input.hardware.uuid), hardware: input.hardware, address };
    let result: EnrollOutcome | undefined;
    let build: Build | undefined;
    const applyRules = async (tx: Stores, machine: Machine): Promise<Machine> => {
      const applied = await applyRulesAtEnrollment(tx, machine, this.builds, nowIso());
      build = applied.build;
      return applied.machine;
    };
    for (let attempt = 1; result === undefined; attempt++) {
      build = undefined;
      try {
        result = await this.storage.transaction((tx) => enrollIn(tx, claim, actor, nowIso(), applyRules));
      } catch (err) {
        // A concurrent enrollment took the tag, MAC or UUID: decide again against what it wrote.
        if (!(err instanceof DuplicateKeyError) || attempt >= 3) throw err;
      }
    }
    this.notifier.emit('machine.updated', result.machine.id);
    if (build) this.builds.signalRequested(build);
    if (result.conflict) {
      throw new ConflictError(
        `${serviceTag}: identity conflict: ${describeConflict(result.conflict)}; ${result.created ? 'the machine was created flagged' : 'nothing was changed'}, an operator must accept or reject the claim`,
      );
    }
    return { machine: result.machine, created: result.created };
  }

  /**
   * Settles a machine's identity conflict: `accept` makes the claimed MAC and UUID the machine's (any
   * other machine holding them gives them up), `reject` drops the claim. ConflictError when there is none.
   */
  async resolveIdentityConflict(ref: string, action: 'accept' | 'reject', actor: Actor): Promise<Machine> {
    const current = await this.get(ref);
    const { machine, released } = await this.storage.transaction(async (tx) => {
      const identity = await tx.machines.findIdentity(current.id);
      if (!identity) throw new NotFoundError(`machine ${ref} not found`);
      const conflict = identity.identity_conflict;
      if (!conflict) throw new ConflictError(`machine ${identity.service_tag} has no identity conflict to ${action}`);
      const now = nowIso();
      if (action === 'reject') {
        const machine = await tx.machines.update(identity.id, { identity_conflict: null }, now);
        await tx.events.record({
          kind: 'machine.identity_rejected',
          machineId: identity.id,
          actor,
          message: `rejected the claim of ${describeClaim(conflict)}`,
          data: { ...conflict },
        });
        return { machine, released: [] as number[] };
      }
      const holders = (await tx.machines.identityHolders(conflict.mac_address, conflict.system_uuid)).filter((h) => h.id !== identity.id);
      for (const h of holders) {
        await tx.machines.update(h.id, { ...(h.mac ? { identity_mac: null } : {}), ...(h.uuid ? { system_uuid: null } : {}) }, now);
        await tx.events.record({
          kind: 'machine.identity_released',
          machineId: h.id,
          actor,
          message: `gave up ${[h.mac ? `MAC ${conflict.mac_address}` : '', h.uuid ? `UUID ${conflict.system_uuid}` : ''].filter(Boolean).join(' and ')} to ${identity.service_tag}`,
          data: { to: identity.service_tag, ...(h.mac ? { mac_address: conflict.mac_address } : {}), ...(h.uuid ? { system_uuid: conflict.system_uuid } : {}) },
        });
      }
      const machine = await tx.machines.update(
        identity.id,
        {
          mac_address: conflict.mac_address,
          identity_mac: conflict.mac_address,
          ...(conflict.system_uuid !== null ? { system_uuid: conflict.system_uuid } : {}),
          identity_conflict: null,
        },
        now,
      );
      await tx.events.record({
        kind: 'machine.identity_accepted',
        machineId: identity.id,
        actor,
        message: `accepted ${describeClaim(conflict)} as this machine's`,
        data: { ...conflict, previous: { mac_address: identity.identity_mac, system_uuid: identity.system_uuid } },
      });
      return { machine, released: holders.map((h) => h.id) };
    });
    for (const id of [machine.id, ...released]) this.notifier.emit('machine.updated', id);
    return machine;
  }

  /** The machine `ref` names (see find); NotFoundError when none. */
  async get(ref: string): Promise<Machine> {
    const machine = await this.find(ref);
    if (!machine) throw new NotFoundError(`machine ${ref} not found`);
    return machine;
  }

  /**
   * `id:12` is machine 12 and `tag:12` the machine whose service tag is `12`. A bare reference is a
   * service tag, or an id when it is a plain number (`12`, never `012`) that is no machine's tag; a
   * number that is both one machine's id and another's tag is ambiguous (ConflictError).
   */
  async find(ref: string): Promise<Machine | undefined> {
    const explicitId = /^id:(\d{1,15})$/.exec(ref);
    if (explicitId) return isRowId(explicitId[1]!) ? this.storage.machines.findById(Number(explicitId[1])) : undefined;
    if (ref.startsWith('id:')) return undefined;
    const tag = ref.startsWith('tag:') ? ref.slice('tag:'.length) : ref;
    const byTag = SERVICE_TAG_REF.test(tag) ? await this.storage.machines.findByServiceTag(tag) : undefined;
    if (tag !== ref || !PLAIN_ID.test(ref) || !isRowId(ref)) return byTag;
    const byId = await this.storage.machines.findById(Number(ref));
    if (byId && byTag && byId.id !== byTag.id) {
      throw new ConflictError(`${ref} is both machine ${byId.service_tag}'s id and machine ${byTag.id}'s service tag: say id:${ref} or tag:${ref}`);
    }
    return byTag ?? byId;
  }

  list(filter: MachineFilter): Promise<{ items: Machine[]; total: number }> {
    return this.storage.machines.list(filter);
  }

  /**
   * Partial update; an enrolled machine with a hostname and a configuration (its own or a profile's)
   * becomes configured. `nixos_files` replaces the whole configuration; `nixos_config` alone makes it
   * one file. A machine without a hostname that gets a profile with a pattern is named from it.
   */
  async update(idOrTag: string, update: MachineUpdate, actor: Actor): Promise<Machine> {
    const patch: { hostname?: string | null; description?: string | null; nixos_files?: ConfigFiles | null; labels?: Labels; profile?: string | null } = {};
    if (update.hostname !== undefined) patch.hostname = update.hostname === null ? null : assertHostname(update.hostname);
    if (update.description !== undefined) {
      patch.description = update.description === null ? null : assertDescription(update.description);
    }
    const files = configurationOf(update);
    if (files !== undefined) patch.nixos_files = files;
    if (update.labels !== undefined) patch.labels = assertLabels(update.labels);
    if (update.profile !== undefined) patch.profile = update.profile === null ? null : assertProfileName(update.profile);
    const current = await this.get(idOrTag);
    const updated = await this.storage.transaction(async (tx) => {
      const machine = await tx.machines.findById(current.id);
      if (!machine) throw new NotFoundError(`machine ${idOrTag} not found`);
      const now = nowIso();
      const profile = patch.profile === undefined ? undefined : await profileFor(tx, patch.profile);
      const entry = patch.nixos_files === undefined ? machine.nixos_config : (patch.nixos_files?.[ENTRY_FILE] ?? null);
      try {
        await tx.machines.update(machine.id, patch, now);
      } catch (err) {
        if (err instanceof DuplicateKeyError && patch.hostname) throw new ConflictError(`hostname ${patch.hostname} is taken by another machine`);
        throw err;
      }
      const changed = [
        ...(['hostname', 'description'] as const).filter((k) => patch[k] !== undefined && patch[k] !== machine[k]),
        ...(patch.nixos_files !== undefined && entry !== machine.nixos_config ? ['nixos_config'] : []),
        // nixos_files: a file besides the entry was added, removed or changed.
        ...(patch.nixos_files !== undefined && !sameConfigFiles(withoutEntry(patch.nixos_files), withoutEntry(machine.nixos_files)) ? ['nixos_files'] : []),
        ...(patch.labels !== undefined && JSON.stringify(patch.labels) !== JSON.stringify(machine.labels) ? ['labels'] : []),
        ...(patch.profile !== undefined && patch.profile !== machine.profile ? ['profile'] : []),
      ];
      const hostname = patch.hostname !== undefined ? patch.hostname : machine.hostname;
      if (hostname === null && profile?.hostname_pattern) {
        const fresh = (await tx.machines.findById(machine.id))!;
        await allocateHostname(tx, fresh, profile.hostname_pattern, now);
        changed.push('hostname');
      }
      const result = await settleConfiguration(tx, machine.id, this.builds.nixpkgs, now);
      await tx.events.record(
        {
          kind: 'machine.updated',
          machineId: machine.id,
          actor,
          message: changed.length ? `changed ${changed.join(', ')}` : 'saved without changes',
          data: { fields: changed, ...(result.status !== machine.status ? { status: { from: machine.status, to: result.status } } : {}) },
        },
      );
      return result;
    });
    this.notifier.emit('machine.updated', updated.id);
    return updated;
  }

  /** Removes the machine, its builds and its images. A running build of it is cancelled. */
  async remove(idOrTag: string, actor: Actor): Promise<void> {
    const machine = await this.get(idOrTag);
    const builds = await this.storage.builds.statusesForMachine(machine.id);
    await this.storage.transaction(async (tx) => {
      await tx.machines.delete(machine.id);
      await tx.events.record(
        {
          kind: 'machine.deleted',
          machineId: machine.id,
          actor,
          message: `${machine.service_tag} deleted`,
          data: { service_tag: machine.service_tag, hostname: machine.hostname },
        },
      );
    });
    for (const b of builds) if (b.status === 'pending' || b.status === 'building') this.notifier.emit('build.cancelled', b.id);
    await this.images.removeMachineImages(
      machine.service_tag,
      builds.map((b) => b.id),
    );
    this.notifier.emit('machine.updated', machine.id);
  }

  /** Creates a pending build of the machine's current configuration; the machine becomes building. */
  async requestBuild(idOrTag: string, actor: Actor): Promise<Build> {
    const machine = await this.get(idOrTag);
    return this.builds.request(machine.id, actor);
  }
}

/**
 * The configuration an update sets, validated: the whole map, the entry text as a one-file map, null
 * to clear it, or undefined when the update leaves it alone. Both fields at once must agree.
 */
function configurationOf(update: MachineUpdate): ConfigFiles | null | undefined {
  const text = update.nixos_config === undefined || update.nixos_config === null ? update.nixos_config : assertNixosConfig(update.nixos_config);
  if (update.nixos_files === undefined) return text === undefined || text === null ? text : singleFileConfig(text);
  const files = update.nixos_files === null ? null : assertConfigFiles(update.nixos_files);
  if (text !== undefined && text !== (files?.[ENTRY_FILE] ?? null)) {
    throw new InvalidInputError('nixos_config and nixos_files disagree: send nixos_files alone (its configuration.nix is the entry)', { field: 'nixos_config' });
  }
  return files;
}

function withoutEntry(files: ConfigFiles | null): ConfigFiles {
  const { [ENTRY_FILE]: _entry, ...rest } = files ?? {};
  return rest;
}
