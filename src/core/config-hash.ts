import { createHash } from 'node:crypto';
import { singleFileConfig, type ConfigFiles } from './config-files.ts';

/**
 * What a machine's image is built from, as far as the configuration goes: the profile's module and
 * kernel parameters, the machine's own module, its hostname and the nixpkgs pin. Two builds of equal
 * inputs give the same hash; a machine is out of date when the hash of what it would be built from now
 * (`desired`) differs from the one its published image was built from (`built`).
 */
export interface EffectiveConfig {
  /** `health_check` is hashed only when set, so the hashes of profiles without one did not change. */
  profile: { name: string; nixos_config: string; kernel_params: readonly string[]; health_check?: string | null } | null;
  /** The machine's own files (`configuration.nix` the entry); null (none) builds as an empty module. */
  machineConfig: ConfigFiles | null;
  hostname: string;
  /** The nixpkgs the builders use, as configured (METAL_NIXPKGS); '' for the host's `<nixpkgs>`. */
  nixpkgs: string;
}

/** sha256 (hex) of the canonical JSON of the effective configuration. */
export function effectiveConfigHash(c: EffectiveConfig): string {
  const canonical = JSON.stringify([
    'metal-config-v1',
    c.profile === null
      ? null
      : [c.profile.name, c.profile.nixos_config, [...c.profile.kernel_params], ...(c.profile.health_check ? [c.profile.health_check] : [])],
    c.machineConfig === null ? null : Object.entries(c.machineConfig).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    c.hostname,
    c.nixpkgs,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** A machine's own files as a build takes them: its file map, or its entry text alone as one file. */
export function machineFilesOf(machine: { nixos_config: string | null; nixos_files?: ConfigFiles | null }): ConfigFiles | null {
  if (machine.nixos_config === null) return null;
  return machine.nixos_files ?? singleFileConfig(machine.nixos_config);
}

/** The hash a machine should be built from now, or null when it cannot be built (no hostname, or nothing to build). */
export function desiredHashOf(
  machine: { hostname: string | null; nixos_config: string | null; nixos_files?: ConfigFiles | null },
  profile: EffectiveConfig['profile'],
  nixpkgs: string,
): string | null {
  if (!machine.hostname || (machine.nixos_config === null && profile === null)) return null;
  return effectiveConfigHash({ profile, machineConfig: machineFilesOf(machine), hostname: machine.hostname, nixpkgs });
}

/** Out of date: the machine can be built, and has no image or one built from something else. */
export function isOutOfDate(desired: string | null, built: string | null): boolean {
  return desired !== null && desired !== built;
}
