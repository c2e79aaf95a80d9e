import { cablingChanges } from './cabling.ts';
import { DuplicateKeyError, type Stores } from './ports.ts';
import type { Actor, Hardware, IdentityConflict, Machine } from './types.ts';
import { isPlaceholderUuid, isUuid } from './validation.ts';

// How one enrollment is decided against the machines' identities (see MachineService.enroll): a MAC
// or SMBIOS UUID belongs to at most one machine, and a claim of another's is flagged, never obeyed.

/** What an enrollment claims. */
export interface Claim {
  serviceTag: string;
  mac: string;
  uuid: string | null;
  hardware: Hardware;
  address: string | null;
}

export interface EnrollOutcome {
  machine: Machine;
  created: boolean;
  conflict: IdentityConflict | null;
}

/** One enrollment decided and written in one transaction (see MachineService.enroll). */
export async function enrollIn(
  tx: Stores,
  claim: Claim,
  actor: Actor,
  now: string,
  /** Runs after a new machine without an identity conflict is written (the enrollment rules); returns it as it is then. */
  afterCreate?: (tx: Stores, machine: Machine) => Promise<Machine>,
): Promise<EnrollOutcome> {
  const known = await tx.machines.findByServiceTag(claim.serviceTag);
  const identity = known ? await tx.machines.findIdentity(known.id) : undefined;
  const holders = (await tx.machines.identityHolders(claim.mac, claim.uuid)).filter((h) => h.id !== known?.id);
  const conflictOf = (): IdentityConflict => ({
    mac_address: claim.mac,
    system_uuid: claim.uuid,
    held_by: holders.map((h) => h.service_tag),
    claimed_at: now,
    address: claim.address,
  });
  if (known && identity) {
    const differs =
      claim.mac !== identity.mac_address.toLowerCase() || (claim.uuid !== null && identity.system_uuid !== null && claim.uuid !== identity.system_uuid);
    if (differs || holders.length > 0) {
      const conflict = conflictOf();
      const machine = await tx.machines.update(known.id, { identity_conflict: conflict }, now);
      await recordConflict(tx, known.id, actor, conflict, `${claim.serviceTag} enrolled again claiming ${describeConflict(conflict)}; nothing was changed`);
      return { machine, created: false, conflict };
    }
    // The machine's own values, which it may not have owned yet (an older record, a rejected claim).
    const fill = {
      ...(identity.identity_mac === null ? { identity_mac: claim.mac } : {}),
      ...(identity.system_uuid === null && claim.uuid !== null ? { system_uuid: claim.uuid } : {}),
    };
    let machine = await tx.machines.refreshHardware(known.id, claim.hardware, now);
    if (Object.keys(fill).length > 0) machine = await tx.machines.update(known.id, fill, now);
    const recabled = cablingChanges(known.hardware, claim.hardware);
    await tx.events.record({
      kind: 'machine.reenrolled',
      machineId: known.id,
      actor,
      message: `${claim.serviceTag} enrolled again; hardware refreshed${recabled.length > 0 ? `; cabling changed (LLDP): ${recabled.join(', ')}` : ''}`,
      data: { mac_address: claim.mac, address: claim.address, ...(recabled.length > 0 ? { cabling_changed: recabled } : {}) },
    });
    return { machine, created: false, conflict: null };
  }
  const conflict = holders.length > 0 ? conflictOf() : null;
  const machine = await tx.machines.insertEnrolled(
    {
      service_tag: claim.serviceTag,
      mac_address: claim.mac,
      hardware: claim.hardware,
      identity_mac: holders.some((h) => h.mac) ? null : claim.mac,
      system_uuid: holders.some((h) => h.uuid) ? null : claim.uuid,
      identity_conflict: conflict,
    },
    now,
  );
  if (!machine) throw new DuplicateKeyError(`${claim.serviceTag} was enrolled concurrently`);
  await tx.events.record({
    kind: 'machine.enrolled',
    machineId: machine.id,
    actor,
    message: `${claim.serviceTag} enrolled`,
    data: { mac_address: claim.mac, address: claim.address },
  });
  if (conflict) await recordConflict(tx, machine.id, actor, conflict, `${claim.serviceTag} enrolled claiming ${describeConflict(conflict)}; created flagged`);
  const settled = !conflict && afterCreate ? await afterCreate(tx, machine) : machine;
  return { machine: settled, created: true, conflict };
}

async function recordConflict(tx: Stores, machineId: number, actor: Actor, conflict: IdentityConflict, message: string): Promise<void> {
  await tx.events.record({ kind: 'machine.identity_conflict', machineId, actor, message, data: { ...conflict } });
}

/** `MAC 52:54:00:12:34:56 and UUID …` */
export function describeClaim(c: IdentityConflict): string {
  return `MAC ${c.mac_address}${c.system_uuid ? ` and UUID ${c.system_uuid}` : ''}`;
}

/** The claim, and who holds it when someone does. */
export function describeConflict(c: IdentityConflict): string {
  return `${describeClaim(c)}${c.held_by.length > 0 ? ` (held by ${c.held_by.join(', ')})` : ' (not this machine\'s)'}`;
}

/** A reported SMBIOS UUID a machine can own: well-formed and not a firmware placeholder; lower-case. */
export function ownableUuid(value: unknown): string | null {
  if (typeof value !== 'string' || !isUuid(value) || isPlaceholderUuid(value)) return null;
  return value.toLowerCase();
}
