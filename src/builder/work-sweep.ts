import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isBuildFinished, type BuildStatus } from '../core/lifecycle.ts';

/**
 * Removes what finished builds left under the builders' work directory (`builds-work/<build id>`): a
 * build's directory is removed when it ends, but a builder that was killed leaves its directories
 * behind. A directory goes when its build is finished or no longer exists and no build of this builder
 * runs in it; other builders sharing the directory only ever have running builds' directories there.
 * Returns the build ids removed.
 */
export async function sweepBuildWork(
  workRoot: string,
  builds: { statusesOf(ids: number[]): Promise<Array<{ id: number; status: BuildStatus }>> },
  runningHere: ReadonlySet<number>,
): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(workRoot);
  } catch {
    return [];
  }
  const ids = names.filter((n) => /^[1-9]\d{0,14}$/.test(n)).map(Number).filter((id) => !runningHere.has(id));
  if (ids.length === 0) return [];
  const statuses = new Map((await builds.statusesOf(ids)).map((b) => [b.id, b.status]));
  const removed: number[] = [];
  for (const id of ids) {
    const status = statuses.get(id);
    if (status !== undefined && !isBuildFinished(status)) continue;
    await rm(join(workRoot, String(id)), { recursive: true, force: true });
    removed.push(id);
  }
  return removed;
}
