import { findExecutable } from '../../../src/builder/nix-build.ts';
import { isPostgresAvailable } from '../../support/databases.ts';

/**
 * Undefined when this host can run the scale-out test (PostgreSQL, Debian's nginx, nix-build), else
 * the reason to skip, announced loudly. In CI (`CI=true`) a missing part is an error.
 */
/** Debian's nginx, which lives in /usr/sbin (not on every PATH). */
export function nginxPath(): string | undefined {
  return findExecutable('nginx', `${process.env.PATH ?? ''}:/usr/sbin:/sbin`);
}

export async function clusterSkipReason(): Promise<string | undefined> {
  const missing: string[] = [];
  if (!nginxPath()) missing.push('no nginx (apt-get install nginx-light)');
  if (!findExecutable('nix-build')) missing.push('no nix-build (apt-get install nix-bin)');
  if (!(await isPostgresAvailable())) missing.push('PostgreSQL unreachable');
  if (missing.length === 0) return undefined;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING the scale-out test: ${reason} ***\n`);
  return reason;
}
