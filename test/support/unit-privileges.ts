import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The unprivileged user the tests run a unit's command as (`nobody`: the unit's own user does not exist here). */
export const UNPRIVILEGED = { uid: 65534, gid: 65534 } as const;

/**
 * `setpriv` arguments that give a command what a systemd unit of `deploy/systemd/` gives it: an
 * unprivileged user, and the unit's `AmbientCapabilities=` as its only capabilities (inheritable,
 * ambient and the bounding set; with none, no capability at all). `capabilities` overrides the unit's.
 */
export function unitPrivileges(unit: string, capabilities = unitCapabilities(unit)): string[] {
  return dropPrivileges({ ...UNPRIVILEGED, capabilities });
}

/**
 * `setpriv` arguments for a command run as `uid`/`gid` with `capabilities` (e.g. `CAP_NET_BIND_SERVICE`
 * or `NET_BIND_SERVICE`) and no other: for a non-root user they are made ambient, as systemd does; root
 * keeps them through its bounding set alone, as a container runtime gives them to a pod running as uid 0.
 */
export function dropPrivileges(options: { uid: number; gid: number; capabilities: string[] }): string[] {
  const caps = options.capabilities.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  const set = ['-all', ...caps].join(',');
  return [
    'setpriv',
    `--reuid=${options.uid}`,
    `--regid=${options.gid}`,
    '--clear-groups',
    `--inh-caps=${set}`,
    ...(caps.length > 0 && options.uid !== 0 ? [`--ambient-caps=${set}`] : []),
    `--bounding-set=${set}`,
    '--',
  ];
}

/** The capabilities a unit grants its (unprivileged) command: its `AmbientCapabilities=` lines. */
export function unitCapabilities(unit: string): string[] {
  const text = readFileSync(fileURLToPath(new URL(`../../deploy/systemd/${unit}`, import.meta.url)), 'utf8');
  return [...text.matchAll(/^AmbientCapabilities=(.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/)).filter(Boolean);
}

/**
 * A directory `name` in `parent` that the unprivileged user owns, for a command run with
 * `unitPrivileges` (its data directory); `parent` (a test's 0700 temporary directory) becomes
 * traversable by others.
 */
export function unprivilegedDir(parent: string, name: string): string {
  chmodSync(parent, 0o711);
  const dir = join(parent, name);
  mkdirSync(dir);
  chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
  return dir;
}
