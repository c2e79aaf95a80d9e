import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanConsoleLine, followConsole } from './console-follower.ts';

describe('the console follower', () => {
  it('cleans a console line: colours, window titles and control characters go, long lines are cut', () => {
    assert.equal(cleanConsoleLine('[\x1b[0;32m  OK  \x1b[0m] Started \x1b]0;title\x07nginx.\r'), '[  OK  ] Started nginx.');
    assert.equal(cleanConsoleLine('a\tb\x00c\x7f'), 'a bc');
    assert.equal(cleanConsoleLine('x'.repeat(600)), `${'x'.repeat(512)}…`);
  });

  it('follows files that appear late and grow, line by line, and hands over the last partial line at the end', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'metal-follow-'));
    try {
      const a = join(dir, 'ttyS0.log');
      const b = join(dir, 'ttyS1.log');
      const lines: string[] = [];
      const follower = followConsole([a, b], (line) => lines.push(line), { intervalMs: 20, keep: 3 });
      await new Promise((r) => setTimeout(r, 60));
      await writeFile(a, 'one\ntw');
      await new Promise((r) => setTimeout(r, 80));
      await appendFile(a, 'o\n\n\nthree\n');
      await writeFile(b, 'on ttyS1\nünïcode, split: ');
      await new Promise((r) => setTimeout(r, 80));
      await appendFile(b, 'end');
      await follower.stop();
      await follower.stop();
      assert.deepEqual(lines, ['one', 'two', 'three', 'on ttyS1', 'ünïcode, split: end']);
      assert.deepEqual(follower.lastLines(), ['three', 'on ttyS1', 'ünïcode, split: end']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
