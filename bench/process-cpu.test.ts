import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { measureCpu, processTree, reapedChildrenCpuSeconds } from './process-cpu.ts';

/** Says `ready`, then on a line from stdin burns 300 ms of its own CPU time and says `done`. */
const BUSY_CHILD = `
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  const start = process.cpuUsage();
  while (process.cpuUsage(start).user < 300_000);
  process.stdout.write('done\\n');
});`;

describe('process CPU time', () => {
  it('finds a child in the tree and counts the CPU time it used', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, ['-e', BUSY_CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await once(child.stdout!, 'data');
      assert.ok(processTree(process.pid).includes(child.pid!), 'the child is in the tree');
      const used = measureCpu(process.pid);
      child.stdin!.write('go\n');
      await once(child.stdout!, 'data');
      assert.ok(used() >= 0.2, `the child used 0.3 s of CPU; measured ${used()} s`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('counts the CPU time of a child once it has exited', { timeout: 60_000 }, async () => {
    const before = reapedChildrenCpuSeconds();
    const child = spawn(process.execPath, ['-e', 'const s = process.cpuUsage(); while (process.cpuUsage(s).user < 300_000);'], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0);
    const used = reapedChildrenCpuSeconds() - before;
    assert.ok(used >= 0.2, `the child used 0.3 s of CPU; counted ${used} s`);
  });
});
