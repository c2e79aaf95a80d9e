import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { missingLabParts } from './lab-host.ts';

/**
 * For tests that boot lab machines: undefined when this host has everything, else the reason to skip,
 * announced loudly. In CI (`CI=true`) a missing part is an error instead, so CI cannot pass by skipping.
 */
export function labSkipReason(needs: { uefi?: boolean; nix?: boolean } = {}): string | undefined {
  const missing = missingLabParts({ uefi: needs.uefi ?? false });
  if (needs.nix && !onPath('nix-build')) missing.push('lab: no nix-build on PATH; install nix-bin');
  if (missing.length === 0) return undefined;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING lab tests: ${reason} ***\n`);
  return reason;
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
