import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What an entry records in its result's boot.json about the nixpkgs it was built from. */
export interface ResultNixpkgs {
  /** e.g. `/srv/nixpkgs` or `https://github.com/NixOS/nixpkgs/archive/<rev>.tar.gz` */
  source?: string;
  sha256?: string | null;
  /** e.g. `24.05.1234.abcdef0` */
  version?: string;
  /** The nixpkgs git revision, when nixpkgs knows it (channel tarballs and git checkouts do). */
  revision?: string | null;
}

/** Printable text only: the values come from a build result and go into a log. */
const PRINTABLE = /^[\x20-\x7e]{1,512}$/;

/**
 * One line naming the nixpkgs a build result was built from (`nixpkgs` in its boot.json), or undefined
 * when the entry records none (a custom entry) or the file is unreadable.
 */
export async function readResultNixpkgs(resultDir: string): Promise<string | undefined> {
  let parsed: { nixpkgs?: ResultNixpkgs };
  try {
    parsed = JSON.parse(await readFile(join(resultDir, 'boot.json'), 'utf8')) as { nixpkgs?: ResultNixpkgs };
  } catch {
    return undefined;
  }
  return formatResultNixpkgs(parsed.nixpkgs);
}

/**
 * The `nixpkgs` object of a result's boot.json with printable strings (or null) only, to publish beside
 * the image; undefined when there is none or it is not such an object.
 */
export function sanitizeResultNixpkgs(value: unknown): ResultNixpkgs | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const out: ResultNixpkgs = {};
  for (const key of ['source', 'sha256', 'version', 'revision'] as const) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'string' && PRINTABLE.test(v)) out[key] = v;
    else if (v === null && (key === 'sha256' || key === 'revision')) out[key] = null;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** `nixpkgs 24.05.1234.abcdef0 (revision abcdef…, sha256 …) from /srv/nixpkgs`; undefined without facts. */
export function formatResultNixpkgs(n: ResultNixpkgs | undefined): string | undefined {
  if (!n || typeof n !== 'object') return undefined;
  const text = (v: unknown) => (typeof v === 'string' && PRINTABLE.test(v) ? v : undefined);
  const version = text(n.version);
  const source = text(n.source);
  const details = [text(n.revision) ? `revision ${text(n.revision)}` : 'revision unknown', ...(text(n.sha256) ? [`sha256 ${text(n.sha256)}`] : [])];
  if (!version && !source) return undefined;
  return `nixpkgs ${version ?? '(version unknown)'} (${details.join(', ')})${source ? ` from ${source}` : ''}`;
}
