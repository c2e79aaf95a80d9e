import { desiredHashOf } from './config-hash.ts';
import { ConflictError, InvalidInputError } from './errors.ts';
import { freeNumbers, hostnameFor, nameTemplate, numberIn, parseHostnamePattern } from './hostname-pattern.ts';
import { assertLabels, type Labels } from './labels.ts';
import type { MachineStatus } from './lifecycle.ts';
import type { Stores } from './ports.ts';
import type { Profile } from './profile.ts';
import type { Machine } from './types.ts';

// What profiles, rules and bulk edits change on a machine, written one way for all of them: the
// profile, labels, a hostname from a pattern, and then the status and desired hash that follow.

/** How many free numbers of a pattern are tried before giving up (others may take them meanwhile). */
export const HOSTNAME_ATTEMPTS = 100;

/** A change of fleet settings on one machine. */
export interface FleetSettings {
  /** A profile name, or null to remove it. */
  profile?: string | null;
  /** Merged into the machine's labels. */
  labels?: Labels;
  /** Names the machine when it has no hostname (else the profile's pattern does). */
  hostname_pattern?: string;
}

/** The profile a machine names, as the hash needs it; InvalidInputError when it does not exist. */
export async function profileFor(tx: Stores, name: string | null): Promise<Profile | null> {
  if (name === null) return null;
  const profile = await tx.profiles.findByName(name);
  if (!profile) throw new InvalidInputError(`profile ${name} does not exist`, { field: 'profile' });
  return profile;
}

/** A machine can be built: it has a hostname and something to build (its own module or a profile). */
export function isConfigured(m: { hostname: string | null; nixos_config: string | null; profile: string | null }): boolean {
  return Boolean(m.hostname && (m.nixos_config !== null || m.profile !== null));
}

/**
 * After any change of hostname, own module or profile: an enrolled machine that is now complete
 * becomes configured, and its desired hash is recomputed. Returns the machine as written.
 */
export async function settleConfiguration(tx: Stores, machineId: number, nixpkgs: string, now: string): Promise<Machine> {
  const machine = await tx.machines.findById(machineId);
  if (!machine) throw new Error(`machine ${machineId} vanished`);
  const profile = machine.profile === null ? null : ((await tx.profiles.findByName(machine.profile)) ?? null);
  const desired = desiredHashOf(machine, profile, nixpkgs);
  const status: MachineStatus = machine.status === 'enrolled' && isConfigured(machine) ? 'configured' : machine.status;
  return tx.machines.update(machine.id, { desired_hash: desired, ...(status !== machine.status ? { status } : {}) }, now);
}

/**
 * Names a machine from a pattern: the smallest number the pattern's machines do not hold, written
 * under the unique index on hostnames; a name another machine took meanwhile is skipped for the next.
 */
export async function allocateHostname(tx: Stores, machine: Machine, patternText: string, now: string): Promise<string> {
  const template = nameTemplate(parseHostnamePattern(patternText), { serviceTag: machine.service_tag, labels: machine.labels });
  if (template.width === 0) {
    const name = hostnameFor(template, 0);
    if (await tx.machines.claimHostname(machine.id, name, now)) return name;
    throw new ConflictError(`${machine.service_tag}: hostname ${name} from pattern ${patternText} is taken by another machine`);
  }
  const held = new Set<number>();
  for (const h of await tx.machines.hostnamesLike(template.prefix, template.suffix)) {
    const n = numberIn(template, h);
    if (n !== undefined) held.add(n);
  }
  for (const n of freeNumbers(held, HOSTNAME_ATTEMPTS)) {
    const name = hostnameFor(template, n);
    if (await tx.machines.claimHostname(machine.id, name, now)) return name;
  }
  throw new ConflictError(`${machine.service_tag}: no free hostname from pattern ${patternText} after ${HOSTNAME_ATTEMPTS} tries`);
}

/** What applying settings changed on one machine. */
export interface SettingsOutcome {
  machine: Machine;
  /** e.g. `['profile', 'labels', 'hostname']` */
  changed: string[];
  /** The hostname given from a pattern, if one was. */
  named?: string;
}

/**
 * Applies fleet settings to one machine inside `tx`: profile (which must exist), labels (merged), and a
 * hostname from the pattern when it has none; then status and desired hash. Records nothing: callers
 * record the event that says why.
 */
export async function applySettings(tx: Stores, machineId: number, settings: FleetSettings, nixpkgs: string, now: string): Promise<SettingsOutcome> {
  let machine = await tx.machines.findById(machineId);
  if (!machine) throw new Error(`machine ${machineId} vanished`);
  const changed: string[] = [];
  const profile = settings.profile === undefined ? await profileFor(tx, machine.profile).catch(() => null) : await profileFor(tx, settings.profile);
  const labels = settings.labels ? assertLabels({ ...machine.labels, ...settings.labels }) : undefined;
  const patch: { profile?: string | null; labels?: Labels } = {};
  if (settings.profile !== undefined && settings.profile !== machine.profile) {
    patch.profile = settings.profile;
    changed.push('profile');
  }
  if (labels && JSON.stringify(labels) !== JSON.stringify(sortKeys(machine.labels))) {
    patch.labels = labels;
    changed.push('labels');
  }
  if (Object.keys(patch).length > 0) machine = await tx.machines.update(machine.id, patch, now);
  let named: string | undefined;
  const pattern = settings.hostname_pattern ?? profile?.hostname_pattern ?? null;
  if (machine.hostname === null && pattern !== null) {
    named = await allocateHostname(tx, machine, pattern, now);
    changed.push('hostname');
  }
  machine = await settleConfiguration(tx, machine.id, nixpkgs, now);
  return { machine, changed, ...(named !== undefined ? { named } : {}) };
}

function sortKeys(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
