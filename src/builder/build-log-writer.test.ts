import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BuildLogWriter } from './build-log-writer.ts';

test('log writer: batches writes into one append per flush, in order', async () => {
  const appends: string[] = [];
  let flushed = 0;
  const w = new BuildLogWriter(async (text) => void appends.push(text), { intervalMs: 60_000, maxBytes: 1024, onFlushed: () => flushed++ });
  w.write('a\n');
  w.write('b\n');
  await w.flush();
  w.write('c\n');
  await w.flush();
  await w.flush();
  assert.deepEqual(appends, ['a\nb\n', 'c\n']);
  assert.equal(flushed, 2);
});

test('log writer: stores at most maxBytes, then one truncation note and nothing more', async () => {
  const appends: string[] = [];
  const w = new BuildLogWriter(async (text) => void appends.push(text), { intervalMs: 60_000, maxBytes: 10 });
  w.write('12345678');
  w.write('abcdef');
  w.write('more');
  await w.flush();
  assert.deepEqual(appends, ['12345678ab\n[log truncated: only the first 10 bytes are kept]\n']);
});

test('log writer: a failing sink is remembered, not thrown at the build', async () => {
  const w = new BuildLogWriter(async () => {
    throw new Error('database gone');
  }, { intervalMs: 60_000, maxBytes: 1024 });
  w.write('x');
  await w.flush();
  assert.equal((w.error as Error).message, 'database gone');
});

test('log writer: flushes on its own after the interval', async () => {
  let resolveAppend: (text: string) => void;
  const appended = new Promise<string>((resolve) => (resolveAppend = resolve));
  const w = new BuildLogWriter(async (text) => resolveAppend(text), { intervalMs: 10, maxBytes: 1024 });
  w.write('tick\n');
  assert.equal(await appended, 'tick\n');
});
