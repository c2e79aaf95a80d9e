import { InvalidInputError } from './errors.ts';
import { MAX_NIXOS_CONFIG_BYTES } from './validation.ts';

/**
 * A machine's NixOS configuration as files: name → text, e.g.
 * `{"configuration.nix": "{ ... }: { imports = [ ./hardware.nix ]; }", "hardware.nix": "…"}`.
 * `configuration.nix` is the entry; the others are what it imports or reads.
 */
export type ConfigFiles = Record<string, string>;

/** The entry file every configuration has. */
export const ENTRY_FILE = 'configuration.nix';
/** At most this many files in one configuration. */
export const MAX_CONFIG_FILES = 64;
/** The files' names and texts together, in UTF-8 bytes (the one-file limit, for the whole map). */
export const MAX_CONFIG_FILES_BYTES = MAX_NIXOS_CONFIG_BYTES;
/** Longest file name, folder included. */
export const MAX_CONFIG_FILE_NAME = 128;
/**
 * What a file may end in: Nix modules, and data files a module reads with `builtins.readFile` or
 * passes as a path (JSON, TOML, YAML, text, configuration snippets, shell scripts, public keys and
 * certificates).
 */
export const CONFIG_FILE_EXTENSIONS = ['.nix', '.json', '.toml', '.yaml', '.yml', '.txt', '.conf', '.sh', '.pub', '.pem', '.crt'] as const;

/** One name segment: starts with a letter, digit, `_` or `-` (never a dot), then also dots. */
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/**
 * Why `name` is not an allowed file name, or undefined when it is: a plain name or one folder deep
 * (`hardware.nix`, `modules/web.nix`), letters, digits, `.`, `_` and `-`, no leading dot, no `..`,
 * ending in one of CONFIG_FILE_EXTENSIONS.
 */
export function configFileNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_CONFIG_FILE_NAME) return `the name is longer than ${MAX_CONFIG_FILE_NAME} characters`;
  if (name.startsWith('/')) return 'absolute paths are not allowed; use a name relative to configuration.nix';
  const segments = name.split('/');
  if (segments.length > 2) return 'at most one folder deep (e.g. modules/web.nix)';
  for (const s of segments) {
    if (s === '..' || s === '.') return 'the name may not contain "." or ".." segments';
    if (!SEGMENT.test(s)) return 'each part of the name is 1 to 64 of A-Z a-z 0-9 . _ - and does not start with a dot';
  }
  if (name.includes('..')) return 'the name may not contain ".."';
  if (!CONFIG_FILE_EXTENSIONS.some((ext) => name.endsWith(ext) && name.length > ext.length)) {
    return `the name must end in one of ${CONFIG_FILE_EXTENSIONS.join(' ')}`;
  }
  return undefined;
}

/** Orders a map with the entry first, then by name, so equal configurations are stored alike. */
function ordered(entries: Array<[string, string]>): ConfigFiles {
  return Object.fromEntries(entries.sort(([a], [b]) => (a === ENTRY_FILE ? -1 : b === ENTRY_FILE ? 1 : a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Checks a whole configuration map (from a machine or a user) and returns it in stored order. It must
 * hold `configuration.nix`, at most MAX_CONFIG_FILES files of text (no NUL) whose names and texts
 * total at most MAX_CONFIG_FILES_BYTES. InvalidInputError names the first bad file; `field` is what
 * the error reports (`nixos_files`).
 */
export function assertConfigFiles(value: unknown, field = 'nixos_files'): ConfigFiles {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInputError(`${field} must be an object of file name → text`, { field });
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_CONFIG_FILES) {
    throw new InvalidInputError(`${field} has ${entries.length} files; at most ${MAX_CONFIG_FILES} are allowed`, { field });
  }
  let bytes = 0;
  const folders = new Set<string>();
  for (const [name, text] of entries) {
    const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
    const problem = configFileNameProblem(name);
    if (problem) throw new InvalidInputError(`${field}: file ${shown} is not allowed: ${problem}`, { field, file: name.slice(0, 200) });
    if (typeof text !== 'string') throw new InvalidInputError(`${field}: file ${shown} must be text`, { field, file: name });
    if (text.includes('\0')) throw new InvalidInputError(`${field}: file ${shown} contains a NUL byte; only text is allowed`, { field, file: name });
    bytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(text, 'utf8');
    if (name.includes('/')) folders.add(name.slice(0, name.indexOf('/')));
  }
  if (bytes > MAX_CONFIG_FILES_BYTES) {
    throw new InvalidInputError(`${field} is ${bytes} bytes in all; at most ${MAX_CONFIG_FILES_BYTES} are allowed`, { field });
  }
  for (const [name] of entries) {
    if (folders.has(name)) throw new InvalidInputError(`${field}: ${JSON.stringify(name)} is both a file and a folder`, { field, file: name });
  }
  if (!entries.some(([name]) => name === ENTRY_FILE)) {
    throw new InvalidInputError(`${field} must contain ${ENTRY_FILE}, the entry that imports the other files`, { field });
  }
  return ordered(entries as Array<[string, string]>);
}

/** The one-file configuration a text alone stands for. */
export function singleFileConfig(text: string): ConfigFiles {
  return { [ENTRY_FILE]: text };
}

/** True when two configurations have the same files with the same texts. */
export function sameConfigFiles(a: ConfigFiles | null, b: ConfigFiles | null): boolean {
  if (a === null || b === null) return a === b;
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}
