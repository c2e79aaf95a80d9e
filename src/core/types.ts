import type { Labels } from './labels.ts';
import type { BuildStatus, MachineStatus } from './lifecycle.ts';

/** Hardware as reported by the registration agent; unknown extra fields are kept. */
export interface Hardware {
  manufacturer?: string;
  model?: string;
  serial?: string;
  uuid?: string;
  [key: string]: unknown;
}

/** A machine as the API shows it. */
export interface Machine {
  id: number;
  service_tag: string;
  /** e.g. `52:54:00:12:34:56` */
  mac_address: string;
  status: MachineStatus;
  hostname: string | null;
  description: string | null;
  hardware: Hardware;
  /** The entry file's text (`nixos_files["configuration.nix"]`). */
  nixos_config: string | null;
  /** The whole configuration: file name → text, `configuration.nix` the entry; null when none is set. */
  nixos_files: Record<string, string> | null;
  /** e.g. `{ role: 'web', rack: 'r12' }` (see core/labels.ts) */
  labels: Labels;
  /** The profile's name, e.g. `web`, or null. */
  profile: string | null;
  /** Its configuration changed since its image was built, or it has none yet (see core/config-hash.ts). */
  out_of_date: boolean;
  last_build_id: number | null;
  /** The build whose image last reported that it booted. */
  booted_build_id: number | null;
  booted_at: string | null;
  /** The health check result sent with that report; absent when the report had none. */
  booted_health?: BootHealth | null;
  enrolled_at: string;
  updated_at: string;
  last_seen_at: string | null;
  /** An enrollment's claim of a MAC or UUID that is not this machine's, until an operator decides. */
  identity_conflict: IdentityConflict | null;
}

/**
 * An enrollment under this machine's tag that claimed a different MAC or UUID, or a MAC or UUID that
 * another machine holds. Nothing else about the machine changed; an operator accepts or rejects it.
 */
export interface IdentityConflict {
  /** The MAC the enrollment claimed, e.g. `52:54:00:12:34:56` */
  mac_address: string;
  /** The SMBIOS UUID it claimed, lower-case, if any. */
  system_uuid: string | null;
  /** Service tags of other machines that hold the claimed MAC or UUID. */
  held_by: string[];
  claimed_at: string;
  /** Where the enrollment came from, e.g. `10.0.2.15` */
  address: string | null;
}

/** What an image's health check gave, sent with its booted report. */
export interface BootHealth {
  ok: boolean;
  /** e.g. `0`; null when the command could not be run or was stopped by the timeout. */
  exit_code: number | null;
  /** The last 2 KiB of what the command printed. */
  output: string;
}

/** A build as the API shows it (the per-build boot token is never part of it). */
export interface Build {
  id: number;
  machine_id: number;
  status: BuildStatus;
  /** The entry file of the NixOS configuration as it was when the build was requested. */
  config: string;
  /** Every file of that configuration (file name → text), `configuration.nix` the entry. */
  config_files: Record<string, string>;
  hostname: string;
  /** The profile the build imports before the machine's module, as it was when requested. */
  profile: string | null;
  /** What the build is made from (core/config-hash.ts); null for builds older than profiles. */
  config_hash: string | null;
  /** The profile's health check as it was when requested; absent when none. */
  health_check?: string | null;
  log_output: string;
  error: string | null;
  artifact_url: string | null;
  attempts: number;
  /** A rollout's build: on success its image is published but the machine is not pointed at it until its wave. */
  hold: boolean;
  /** When retention deleted its published image (METAL_KEEP_BUILDS); it can no longer be booted. */
  image_swept_at: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  /** The nixpkgs a successful build was built from, as its entry recorded it; null when unknown. */
  nixpkgs: BuildNixpkgs | null;
  /** Seconds its image took to report booted in the builder's VM (METAL_BUILD_BOOT_CHECK); null: not checked. */
  boot_check_seconds: number | null;
}

/** The nixpkgs a build used, as the entry recorded it in the result's boot.json (each part may be unknown). */
export interface BuildNixpkgs {
  /** e.g. `24.05.1234.abcdef0` */
  version: string | null;
  /** The nixpkgs git revision, e.g. `abcdef0123456789abcdef0123456789abcdef01` */
  revision: string | null;
  /** e.g. `/srv/nixpkgs` or `https://github.com/NixOS/nixpkgs/archive/<rev>.tar.gz` */
  source: string | null;
  /** The tarball's hash when METAL_NIXPKGS pins one. */
  sha256: string | null;
}

/** Who or what caused a change, as recorded in events. e.g. `{kind: 'user', name: 'alice'}` */
export interface Actor {
  kind: 'user' | 'token' | 'machine' | 'system' | 'builder' | 'anonymous';
  name: string;
  /** For users and tokens: their role. */
  role?: Role;
  /** For users: their id; for tokens: the token id. */
  id?: number;
}

export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

export function roleAtLeast(have: Role | undefined, need: Role): boolean {
  if (!have) return false;
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

export const SYSTEM_ACTOR: Actor = { kind: 'system', name: 'system' };

/** Something that happened, to which machine or build, by whom, when. */
export interface Event {
  id: number;
  /** e.g. `machine.enrolled`, `build.succeeded` */
  kind: string;
  machine_id: number | null;
  build_id: number | null;
  /** e.g. `user:alice`, `machine:ABC123`, `system` */
  actor: string;
  message: string;
  data: Record<string, unknown> | null;
  created_at: string;
}

export function nowIso(): string {
  return new Date().toISOString();
}

/** A user as the API shows it: never the password hash. */
export interface User {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  created_at: string;
  updated_at: string;
}

/** A user with the hash, for sign-in only. */
export interface UserWithHash extends User {
  password_hash: string;
}

/** A named API token as the API shows it: never the token or its hash. */
export interface ApiToken {
  id: number;
  name: string;
  role: Role;
  /** Username of the creator. */
  owner: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** What a presented token or session resolves to, with its owner's current state. */
export interface Credential {
  /** Session or token id. */
  id: number;
  userId: number;
  username: string;
  /** The owner's role now. */
  userRole: Role;
  disabled: boolean;
  expiresAt: string | null;
  lastUsedAt: string | null;
  /** API tokens only. */
  tokenName?: string;
  tokenRole?: Role;
  revokedAt?: string | null;
}

/** What a machine's BMC last reported about its power. */
export type PowerState = 'on' | 'off' | 'unknown';

/**
 * A machine's BMC settings as stored. The password is kept sealed (encrypted with the secret box) and
 * only the power service opens it; `credential_set_id` names a shared credential set instead.
 */
export interface StoredBmc {
  type: 'ipmi' | 'redfish';
  /** Normalised `host:port` (`[v6]:port`). */
  address: string;
  /** Own credentials; null when a credential set is referenced. */
  username: string | null;
  password_sealed: string | null;
  credential_set_id: number | null;
  verify_tls: boolean;
  tls_fingerprint: string | null;
  tls_ca_bundle: string | null;
  auth: 'session' | 'basic';
  system_id: string | null;
}

/** A machine's power record: its BMC (if any), the last state seen, and the reboot-on-publish setting. */
export interface MachinePower {
  machine_id: number;
  bmc: StoredBmc | null;
  power_state: PowerState;
  /** When the state was last read from the BMC. */
  checked_at: string | null;
  reboot_on_publish: boolean;
  /** The last build whose publication triggered a reboot (each build at most once). */
  reboot_build_id: number | null;
}

/** BMC credentials named once and referenced by many machines. The password stays sealed in storage. */
export interface BmcCredentialSet {
  id: number;
  /** e.g. `r740-rack-a` */
  name: string;
  username: string;
  password_sealed: string;
  created_at: string;
  updated_at: string;
}
