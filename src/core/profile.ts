import { InvalidInputError } from './errors.ts';
import { parseHostnamePattern } from './hostname-pattern.ts';
import { assertDescription, assertNixosConfig } from './validation.ts';

/** A profile: the NixOS module, hostname pattern and kernel parameters shared by many machines. */
export interface Profile {
  id: number;
  /** A DNS label, e.g. `web`; never changes once created. */
  name: string;
  description: string | null;
  nixos_config: string;
  /** e.g. `web-{n:03}`; null: machines are named by hand. */
  hostname_pattern: string | null;
  /** Added to the kernel line of its machines' images, e.g. `['console=ttyS1,115200']` */
  kernel_params: string[];
  /** Machines that get the profile through a rule are built at once. */
  auto_build: boolean;
  /**
   * A command line the image runs once it came up (`sh -c`, at most 120 s); its result goes with the
   * booted report and a rollout counts a failure as unhealthy. e.g. `systemctl is-active nginx`
   */
  health_check: string | null;
  /**
   * Its machines' builds skip the boot check (METAL_BUILD_BOOT_CHECK): for configurations that cannot
   * come up in the builder's VM (every NIC with a fixed address, hardware the VM lacks).
   */
  skip_boot_check: boolean;
  created_at: string;
  updated_at: string;
  /** How many machines use it (filled on reads that ask). */
  machines?: number;
  /** How many of those are out of date (filled on reads that ask). */
  out_of_date?: number;
}

/** The fields a profile is created or changed with. */
export interface ProfileFields {
  description?: string | null;
  nixos_config?: string;
  hostname_pattern?: string | null;
  kernel_params?: string[];
  auto_build?: boolean;
  health_check?: string | null;
  skip_boot_check?: boolean;
}

/** A profile name: a DNS label, lower-case. */
export const PROFILE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** At most this many extra kernel parameters. */
export const MAX_PROFILE_KERNEL_PARAMS = 32;
/**
 * One kernel parameter that needs no quoting in an iPXE script or on a kernel command line (the boot
 * manifest's rule): no whitespace, quotes, backslashes or the iPXE specials `$ { } ; & | #`.
 */
export const PROFILE_KERNEL_PARAM = /^[A-Za-z0-9._,:/=+@%~-]{1,256}$/;
/** The longest health check command line. */
export const MAX_HEALTH_CHECK_LENGTH = 1024;
/** Control characters (NUL, newline, escape, DEL, ...): a health check is one printable line. */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
/** Parameters the boot server writes itself. */
const RESERVED_PARAM = /^(init|initrd|metal\.[A-Za-z0-9_.-]*|enrollment_url|BOOT_IMAGE)(=|$)/;

export function assertProfileName(value: unknown): string {
  if (typeof value !== 'string' || !PROFILE_NAME_PATTERN.test(value)) {
    throw new InvalidInputError(
      `profile name ${JSON.stringify(String(value).slice(0, 80))} is invalid: expected a DNS label (lower-case letters, digits, inner "-", at most 63)`,
      { field: 'name' },
    );
  }
  return value;
}

export function assertKernelParams(value: unknown): string[] {
  if (!Array.isArray(value)) throw new InvalidInputError('kernel_params must be a list of strings', { field: 'kernel_params' });
  if (value.length > MAX_PROFILE_KERNEL_PARAMS) throw new InvalidInputError(`kernel_params: at most ${MAX_PROFILE_KERNEL_PARAMS} parameters`, { field: 'kernel_params' });
  return value.map((p, i) => {
    if (typeof p !== 'string' || !PROFILE_KERNEL_PARAM.test(p)) {
      throw new InvalidInputError(
        `kernel_params[${i}] ${JSON.stringify(String(p).slice(0, 80))} is not allowed: one parameter of A-Z a-z 0-9 . _ , : / = + @ % ~ - without spaces, at most 256 characters`,
        { field: 'kernel_params' },
      );
    }
    if (RESERVED_PARAM.test(p)) throw new InvalidInputError(`kernel_params[${i}] ${JSON.stringify(p)} sets a parameter the boot server writes itself`, { field: 'kernel_params' });
    return p;
  });
}

/** A health check command line: null or '' for none; else one printable line of at most 1024 characters. */
export function assertHealthCheck(value: unknown): string | null {
  if (value === null || value === '') return null;
  if (typeof value !== 'string') throw new InvalidInputError('health_check must be a command line (a string) or null', { field: 'health_check' });
  if (value.length > MAX_HEALTH_CHECK_LENGTH) throw new InvalidInputError(`health_check is too long: at most ${MAX_HEALTH_CHECK_LENGTH} characters`, { field: 'health_check' });
  if (CONTROL_CHARACTER.test(value)) throw new InvalidInputError('health_check must be one printable line: no newline, NUL or other control characters', { field: 'health_check' });
  if (value.trim() === '') return null;
  return value;
}

/** Checks the fields of a create (`creating`: nixos_config required) or a change. */
export function assertProfileFields(input: Record<string, unknown>, creating: boolean): ProfileFields {
  const out: ProfileFields = {};
  if (input.description !== undefined) {
    if (input.description !== null && typeof input.description !== 'string') throw new InvalidInputError('description must be a string or null', { field: 'description' });
    out.description = input.description === null ? null : assertDescription(input.description);
  }
  if (input.nixos_config !== undefined) {
    if (typeof input.nixos_config !== 'string') throw new InvalidInputError('nixos_config must be a string (a NixOS module)', { field: 'nixos_config' });
    out.nixos_config = assertNixosConfig(input.nixos_config);
  } else if (creating) {
    out.nixos_config = '{ ... }:\n{\n}\n';
  }
  if (input.hostname_pattern !== undefined) {
    out.hostname_pattern = input.hostname_pattern === null || input.hostname_pattern === '' ? null : parseHostnamePattern(input.hostname_pattern).text;
  }
  if (input.kernel_params !== undefined) out.kernel_params = assertKernelParams(input.kernel_params);
  if (input.auto_build !== undefined) {
    if (typeof input.auto_build !== 'boolean') throw new InvalidInputError('auto_build must be true or false', { field: 'auto_build' });
    out.auto_build = input.auto_build;
  }
  if (input.health_check !== undefined) out.health_check = assertHealthCheck(input.health_check);
  if (input.skip_boot_check !== undefined) {
    if (typeof input.skip_boot_check !== 'boolean') throw new InvalidInputError('skip_boot_check must be true or false', { field: 'skip_boot_check' });
    out.skip_boot_check = input.skip_boot_check;
  }
  return out;
}
