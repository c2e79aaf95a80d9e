import { InvalidInputError } from './errors.ts';

/** A DMI serial used as the machine's identity. e.g. `ABC123`, `CZJ9450B2K` */
export const SERVICE_TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** e.g. `52:54:00:12:34:56` (stored lower-case). */
export const MAC_PATTERN = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
/** An RFC 1123 label: letters, digits and inner hyphens, at most 63 characters. */
export const HOSTNAME_PATTERN = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
/** e.g. `4c4c4544-0042-3510-8052-b3c04f4e3232` */
export const UUID_PATTERN = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

/** The largest row id any lookup takes (a 32-bit integer: every database column binds it). */
export const MAX_ID = 2_147_483_647;

/** True for a decimal row id from 1 to MAX_ID, e.g. "42". */
export function isRowId(value: string): boolean {
  return /^\d{1,10}$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_ID;
}

export const MAX_NIXOS_CONFIG_BYTES = 256 * 1024;
export const MAX_DESCRIPTION_LENGTH = 4096;

/** Values vendors put in the DMI serial when there is no serial. */
const PLACEHOLDER_SERIALS = new Set(
  [
    'to be filled by o.e.m.',
    'to be filled by oem',
    'default string',
    'system serial number',
    'not specified',
    'not applicable',
    'none',
    'n/a',
    '0',
    'chassis serial number',
    'serial number',
    '0123456789',
  ].map((s) => s.toLowerCase()),
);

/** What firmware puts in the DMI vendor and product fields when the board maker filled in nothing. */
const PLACEHOLDER_DMI_TEXT = new Set([...PLACEHOLDER_SERIALS, 'to be filled by o.e.m', 'o.e.m.', 'oem', 'system manufacturer', 'system product name', 'system version', 'default']);

/** True for a DMI vendor or product name that says nothing (`To Be Filled By O.E.M.`, `System manufacturer`, …). */
export function isPlaceholderDmiText(value: string): boolean {
  return PLACEHOLDER_DMI_TEXT.has(value.trim().toLowerCase());
}

/** SMBIOS UUIDs that firmware gives every board of a kind: they identify no one machine. */
const PLACEHOLDER_UUIDS = new Set([
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '03000200-0400-0500-0006-000700080009',
]);

/** True for the shared firmware UUIDs above (the agent skips them too). */
export function isPlaceholderUuid(value: string): boolean {
  return PLACEHOLDER_UUIDS.has(value.trim().toLowerCase());
}

export function isServiceTag(value: string): boolean {
  return SERVICE_TAG_PATTERN.test(value);
}

/** True for vendor placeholder serials: known phrases, empty, or one character repeated. */
export function isPlaceholderSerial(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === '') return true;
  if (PLACEHOLDER_SERIALS.has(v)) return true;
  return /^(.)\1*$/.test(v);
}

export function assertServiceTag(value: string): string {
  if (!isServiceTag(value)) {
    throw new InvalidInputError(
      `service_tag ${JSON.stringify(truncate(value))} is invalid: expected 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit`,
      { field: 'service_tag' },
    );
  }
  return value;
}

export function normalizeMac(value: string): string {
  if (!MAC_PATTERN.test(value)) {
    throw new InvalidInputError(
      `mac_address ${JSON.stringify(truncate(value))} is invalid: expected six hex pairs separated by colons`,
      { field: 'mac_address' },
    );
  }
  return value.toLowerCase();
}

export function isMac(value: string): boolean {
  return MAC_PATTERN.test(value);
}

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

export function assertHostname(value: string): string {
  if (!HOSTNAME_PATTERN.test(value)) {
    throw new InvalidInputError(
      `hostname ${JSON.stringify(truncate(value))} is invalid: expected an RFC 1123 label (letters, digits, inner hyphens, at most 63)`,
      { field: 'hostname' },
    );
  }
  return value.toLowerCase();
}

export function assertNixosConfig(value: string): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_NIXOS_CONFIG_BYTES) {
    throw new InvalidInputError(`nixos_config is ${bytes} bytes; at most ${MAX_NIXOS_CONFIG_BYTES} are allowed`, {
      field: 'nixos_config',
    });
  }
  if (value.includes('\0')) {
    throw new InvalidInputError('nixos_config contains a NUL byte', { field: 'nixos_config' });
  }
  return value;
}

export function assertDescription(value: string): string {
  if (value.length > MAX_DESCRIPTION_LENGTH) {
    throw new InvalidInputError(`description is longer than ${MAX_DESCRIPTION_LENGTH} characters`, {
      field: 'description',
    });
  }
  return value;
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
