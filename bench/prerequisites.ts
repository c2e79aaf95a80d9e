import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A system program a scenario needs, and the Debian package that provides it. */
export interface Tool {
  command: string;
  debianPackage: string;
}

/** The programs the benchmarks run, by the package that installs them on Debian. */
export const NGINX: Tool = { command: 'nginx', debianPackage: 'nginx-light' };
export const WRK: Tool = { command: 'wrk', debianPackage: 'wrk' };
export const NIX_BUILD: Tool = { command: 'nix-build', debianPackage: 'nix-bin' };
export const SQLITE3: Tool = { command: 'sqlite3', debianPackage: 'sqlite3' };
export const PG_DUMP: Tool = { command: 'pg_dump', debianPackage: 'postgresql-client' };

/** Whether `command` is an executable file on PATH. */
export function isOnPath(command: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The tools missing from PATH, and the line telling the operator how to install them; nothing is installed here. */
export function missingTools(tools: readonly Tool[], path = process.env.PATH ?? ''): { missing: Tool[]; advice: string } {
  const unique = [...new Map(tools.map((t) => [t.command, t])).values()];
  const missing = unique.filter((t) => !isOnPath(t.command, path));
  const advice = missing.length
    ? `missing: ${missing.map((t) => t.command).join(', ')}; install with: apt-get install -y --no-install-recommends ${missing.map((t) => t.debianPackage).join(' ')}`
    : '';
  return { missing, advice };
}
