import { readdirSync, readFileSync } from 'node:fs';

/** The command lines of every process on the machine, as `/proc/<pid>/cmdline` shows them to anyone. */
export function allCommandLines(): string[] {
  const lines: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      lines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    } catch {
      // the process ended while we looked
    }
  }
  return lines;
}

/**
 * Reads every process's command line over and over until `work` settles, and returns what was seen:
 * every line containing `secret`, and every line containing `watch` (to prove the watched tool ran).
 */
export async function watchCommandLines<T>(work: Promise<T>, secret: string, watch: string): Promise<{ leaked: string[]; watched: string[]; result: PromiseSettledResult<T> }> {
  const leaked = new Set<string>();
  const watched = new Set<string>();
  let done = false;
  const settled = work.then(
    (value): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
    (reason: unknown): PromiseSettledResult<T> => ({ status: 'rejected', reason }),
  );
  void settled.then(() => (done = true));
  while (!done) {
    for (const line of allCommandLines()) {
      if (line.includes(secret)) leaked.add(line);
      if (line.includes(watch)) watched.add(line);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { leaked: [...leaked], watched: [...watched], result: await settled };
}
