import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { BuildStatus } from '../core/lifecycle.ts';
import { sweepBuildWork } from './work-sweep.ts';

describe('builds-work sweep', () => {
  const root = mkdtempSync(join(tmpdir(), 'metal-work-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('removes the directories of finished and unknown builds; keeps running, pending and this builder’s own', async () => {
    const statuses: Record<number, BuildStatus> = { 1: 'success', 2: 'failed', 3: 'cancelled', 4: 'building', 5: 'pending', 6: 'success' };
    for (const name of ['1', '2', '3', '4', '5', '6', '7', 'notes', '.tmp-x']) {
      mkdirSync(join(root, name, 'sub'), { recursive: true });
      writeFileSync(join(root, name, 'sub', 'configuration.nix'), '{ }');
    }
    const asked: number[][] = [];
    const builds = {
      async statusesOf(ids: number[]) {
        asked.push([...ids].sort((a, b) => a - b));
        return ids.filter((id) => statuses[id]).map((id) => ({ id, status: statuses[id]! }));
      },
    };
    const removed = await sweepBuildWork(root, builds, new Set([6]));
    assert.deepEqual(removed.sort((a, b) => a - b), [1, 2, 3, 7]);
    for (const name of ['4', '5', '6', 'notes', '.tmp-x']) assert.ok(existsSync(join(root, name)), `${name} stays`);
    for (const name of ['1', '2', '3', '7']) assert.equal(existsSync(join(root, name)), false, `${name} is gone`);
    assert.deepEqual(asked, [[1, 2, 3, 4, 5, 7]], 'its own running build is not even asked about');
    assert.deepEqual(await sweepBuildWork(root, builds, new Set()), [6], 'once it ends elsewhere, it goes too');
  });

  test('a missing work directory is nothing to sweep', async () => {
    assert.deepEqual(await sweepBuildWork(join(root, 'absent'), { statusesOf: async () => assert.fail('not asked') }, new Set()), []);
  });
});
