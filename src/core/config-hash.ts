import { createHash } from 'node:crypto';

/**
 * What a machine's image is built from, as far as the configuration goes: the profile's module and
 * kernel parameters, the machine's own module, its hostname and the nixpkgs pin. Two builds of equal
 * inputs give the same hash; a machine is out of date when the hash of what it would be built from now
 * (`desired`) differs from the one its published image was built from (`built`).
 */
export interface EffectiveConfig {
  profile: { name: string; nixos_config: string; kernel_params: readonly string[] } | null;
  /** The machine's own module; null (none) builds as an empty module. */
  machineConfig: string | null;
  hostname: string;
  /** The nixpkgs the builders use, as configured (METAL_NIXPKGS); '' for the host's `<nixpkgs>`. */
  nixpkgs: string;
}

/** sha256 (hex) of the canonical JSON of the effective configuration. */
export function effectiveConfigHash(c: EffectiveConfig): string {
  const canonical = JSON.stringify([
    'metal-config-v1',
    c.profile === null ? null : [c.profile.name, c.profile.nixos_config, [...c.profile.kernel_params]],
    c.machineConfig ?? '',
    c.hostname,
    c.nixpkgs,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The hash a machine should be built from now, or null when it cannot be built (no hostname, or nothing to build). */
export function desiredHashOf(
  machine: { hostname: string | null; nixos_config: string | null },
  profile: EffectiveConfig['profile'],
  nixpkgs: string,
): string | null {
  if (!machine.hostname || (machine.nixos_config === null && profile === null)) return null;
  return effectiveConfigHash({ profile, machineConfig: machine.nixos_config, hostname: machine.hostname, nixpkgs });
}

/** Out of date: the machine can be built, and has no image or one built from something else. */
export function isOutOfDate(desired: string | null, built: string | null): boolean {
  return desired !== null && desired !== built;
}
