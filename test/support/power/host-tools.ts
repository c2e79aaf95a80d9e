import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Full path of an executable on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Why tests needing these tools (name → Debian package) cannot run here, or undefined. Announced loudly
 * outside CI; in CI (`CI=true`) a missing tool is an error, so CI cannot pass by skipping.
 */
export function missingToolsSkipReason(what: string, tools: Record<string, string>): string | undefined {
  const missing = Object.entries(tools).filter(([bin]) => !findExecutable(bin)).map(([bin, pkg]) => `${bin} (Debian package ${pkg})`);
  if (missing.length === 0) return undefined;
  const reason = `power: missing ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING ${what}: ${reason} ***\n`);
  return reason;
}
