import { findExecutable } from '../../src/builder/nix-build.ts';

/**
 * The value of one sample in a Prometheus text exposition, matched by name and exactly these
 * labels; undefined when absent.
 */
export function sampleValue(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found[k!] = v!;
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(found).length || keys.some((k) => found[k] !== labels[k])) continue;
    return Number(m[3]);
  }
  return undefined;
}

/** Every metric family name (`# TYPE` lines) in an exposition. */
export function familyNames(exposition: string): string[] {
  return [...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
}

/**
 * Whether a Prometheus tool (`promtool`, `prometheus`, Debian package `prometheus`) can be run.
 * Missing outside CI: a loud warning and the caller skips; in CI (`CI=true`) it is an error.
 */
export function prometheusTool(name: 'promtool' | 'prometheus'): string | undefined {
  const path = findExecutable(name);
  if (path) return path;
  if (process.env.CI === 'true') throw new Error(`${name} is required in CI (Debian package prometheus)`);
  console.warn(`\n*** SKIPPING tests that run ${name}: it is not installed (apt-get install prometheus) ***\n`);
  return undefined;
}
