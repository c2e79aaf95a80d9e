import type { BuildNixpkgs } from './types.ts';

/** How many characters of a nixpkgs revision name it in lists (as `git log --oneline` does). */
export const SHORT_REVISION_LENGTH = 12;

/** A short name for the nixpkgs of a build: the revision's first characters, else the version; `-` when unknown. */
export function shortNixpkgs(n: Pick<BuildNixpkgs, 'revision' | 'version'> | null | undefined): string {
  if (n?.revision) return n.revision.slice(0, SHORT_REVISION_LENGTH);
  return n?.version ?? '-';
}

/** One line: `24.05.1234.abcdef0, revision abcdef0123456789…, sha256 …, from /srv/nixpkgs`; `unknown` without facts. */
export function describeBuildNixpkgs(n: BuildNixpkgs | null | undefined): string {
  if (!n) return 'unknown (the entry recorded none)';
  return [n.version ?? 'version unknown', n.revision ? `revision ${n.revision}` : 'revision unknown', ...(n.sha256 ? [`sha256 ${n.sha256}`] : []), ...(n.source ? [`from ${n.source}`] : [])].join(', ');
}

/**
 * The distinct nixpkgs among builds (by revision, else by version), each by its short name, so a page
 * or command can say that a machine's builds used different ones. Builds that recorded none do not count.
 */
export function distinctNixpkgs(builds: Array<Pick<BuildNixpkgs, 'revision' | 'version'> | null | undefined>): string[] {
  const seen = new Map<string, string>();
  for (const n of builds) if (n && (n.revision || n.version)) seen.set(n.revision ?? `version ${n.version}`, shortNixpkgs(n));
  return [...seen.values()];
}
