import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The layering rules of docs/architecture.md, checked on the source itself.

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

interface SourceFile {
  /** e.g. `boot/boot-server.ts` */
  path: string;
  /** The top-level folder, e.g. `boot`. */
  folder: string;
  text: string;
  isTest: boolean;
  /** Relative imports resolved to paths under src/, and bare package names. */
  imports: string[];
}

function collect(dir: string, out: SourceFile[] = []): SourceFile[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) {
      if (name !== 'fixtures' && name !== 'static') collect(full, out);
      continue;
    }
    if (!/\.tsx?$/.test(name)) continue;
    const text = readFileSync(full, 'utf8');
    const path = relative(SRC, full);
    const imports = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"\n;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => {
      const spec = (m[1] ?? m[2])!;
      return spec.startsWith('.') ? relative(SRC, resolve(dirname(full), spec)) : spec;
    });
    out.push({ path, folder: path.split('/')[0]!, text, isTest: /\.test\.tsx?$/.test(name), imports });
  }
  return out;
}

const files = collect(SRC);
const production = files.filter((f) => !f.isTest);
const DATABASE_PACKAGES = /^(kysely|pg|better-sqlite3)(\/|$)/;
const QUERY_CALLS = /\.(selectFrom|updateTable|insertInto|deleteFrom)\(|\bsql`/;

describe('layers', () => {
  test('the source tree was read', () => {
    assert.ok(production.length > 50, `only ${production.length} files found under ${SRC}`);
  });

  test('only src/storage/ imports database packages or writes queries', () => {
    const offenders = files
      .filter((f) => f.folder !== 'storage')
      .filter((f) => f.imports.some((i) => DATABASE_PACKAGES.test(i)) || (!f.isTest && QUERY_CALLS.test(f.text)))
      .map((f) => f.path);
    assert.deepEqual(offenders, []);
  });

  test('nothing outside src/server/ imports it (it is the composition root)', () => {
    const offenders = production.filter((f) => f.folder !== 'server' && f.imports.some((i) => i.startsWith('server/'))).map((f) => f.path);
    assert.deepEqual(offenders, []);
  });

  test('the core depends on nothing but itself', () => {
    const offenders = production
      .filter((f) => f.folder === 'core')
      .flatMap((f) => f.imports.filter((i) => /^[a-z-]+\//.test(i) && !i.startsWith('core/')).map((i) => `${f.path} -> ${i}`));
    assert.deepEqual(offenders, []);
  });

  test('no import cycle between top-level folders', () => {
    const edges = new Map<string, Set<string>>();
    for (const f of production) {
      for (const i of f.imports) {
        const to = i.split('/')[0]!;
        if (!i.includes('/') || to === f.folder || !files.some((g) => g.folder === to)) continue;
        if (!edges.has(f.folder)) edges.set(f.folder, new Set());
        edges.get(f.folder)!.add(to);
      }
    }
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      for (const next of edges.get(node) ?? []) {
        if (path.includes(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(' -> '));
        else visit(next, [...path, next]);
      }
    };
    for (const node of edges.keys()) visit(node, [node]);
    assert.deepEqual([...new Set(cycles)], []);
  });
});
