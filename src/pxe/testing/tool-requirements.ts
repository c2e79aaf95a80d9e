import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * For tests that run system tools (curl, atftp, ip, dnsmasq…): undefined when every one is on PATH,
 * else the reason to skip, announced loudly. In CI (`CI=true`) a missing tool is an error instead.
 */
export function toolSkipReason(tools: Record<string, string>): string | undefined {
  const missing = Object.entries(tools)
    .filter(([name]) => !onPath(name))
    .map(([name, pkg]) => `${name} (Debian package ${pkg})`);
  if (missing.length === 0) return undefined;
  const reason = `missing ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING tests: ${reason} ***\n`);
  return reason;
}

/** Whether an executable of that name is on PATH (or at that absolute path). */
export function onPath(name: string): boolean {
  const dirs = name.includes('/') ? [''] : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    try {
      accessSync(dir ? join(dir, name) : name, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
