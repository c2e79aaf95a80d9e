import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ProfileSummary } from './result.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** The subset of a V8 `.cpuprofile` the summary reads. */
export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/**
 * Self time per function (name, file and line), largest first; `(idle)` is left out so the percentages
 * are of the time the process was busy.
 */
export function summariseProfile(profile: CpuProfile, label: string, top = 15, root = process.cwd()): ProfileSummary {
  const totalHits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const msPerHit = totalHits > 0 ? (profile.endTime - profile.startTime) / 1000 / totalHits : 0;
  const byFrame = new Map<string, number>();
  const byArea = new Map<string, number>();
  let busyHits = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0 || node.callFrame.functionName === '(idle)') continue;
    busyHits += hits;
    const key = frameName(node.callFrame, root);
    byFrame.set(key, (byFrame.get(key) ?? 0) + hits);
    const area = areaOf(node.callFrame, root);
    byArea.set(area, (byArea.get(area) ?? 0) + hits);
  }
  const rank = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([frame, hits]) => ({ frame, selfMs: Math.round(hits * msPerHit), percent: Math.round((hits / busyHits) * 1000) / 10 }));
  return { label, totalMs: Math.round(busyHits * msPerHit), frames: rank(byFrame, top), areas: rank(byArea, 10) };
}

/**
 * Where a frame's code lives: a package (`fastify`), a folder of ours (`src/boot`), Node's own
 * JavaScript (`node:internal`), or native work (syscalls like `writev`, the garbage collector).
 */
export function areaOf(cf: CpuProfileNode['callFrame'], root: string): string {
  if (!cf.url) return cf.functionName.startsWith('(') ? cf.functionName : 'native (syscalls, bindings)';
  if (cf.url.startsWith('node:')) return 'node:internal';
  const file = relative(root, cf.url.replace(/^file:\/\//, ''));
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (pkg) return pkg[1]!;
  const dirs = file.split('/');
  return dirs.length > 2 ? `${dirs[0]}/${dirs[1]}` : file;
}

function frameName(cf: CpuProfileNode['callFrame'], root: string): string {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return name;
  let file = cf.url.replace(/^file:\/\//, '');
  if (file.startsWith('/')) file = relative(root, file);
  return `${name} ${file}:${cf.lineNumber + 1}`;
}

/** Reads and summarises the one `.cpuprofile` that `node --cpu-prof --cpu-prof-dir dir` wrote. */
export function summariseProfileDir(dir: string, label: string): ProfileSummary | undefined {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return undefined;
  return summariseProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, label);
}
