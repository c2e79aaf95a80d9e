import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ImageLayout } from '../images/image-layout.ts';
import { BuildRetention } from './build-retention.ts';
import type { Storage } from './ports.ts';

describe('BuildRetention: files a stopped process left behind', () => {
  test('the first sweep removes the directories of builds already marked swept, and only those', async () => {
    const root = mkdtempSync(join(tmpdir(), 'metal-retention-'));
    try {
      const layout = new ImageLayout(root);
      for (const name of ['3', '4', '5', '.tmp-6-abc', 'notes']) {
        mkdirSync(join(layout.buildsDir, name), { recursive: true });
        writeFileSync(join(layout.buildsDir, name, 'bzImage'), 'k');
      }
      // Build 4 was marked swept, then the process stopped before removing its files; 3 and 5 are kept.
      const asked: number[][] = [];
      const storage = {
        builds: {
          async publishedImages() {
            return [];
          },
          async sweptAmong(ids: number[]) {
            asked.push([...ids].sort());
            return ids.filter((id) => id === 4);
          },
        },
        rollouts: {
          async activeBuildIds() {
            return [];
          },
        },
      } as unknown as Storage;
      const retention = new BuildRetention(storage, layout, 3);
      assert.deepEqual(await retention.sweep(), { swept: [], leftovers: [4] });
      assert.deepEqual(asked, [[3, 4, 5]], 'only numeric build directories are looked up');
      assert.equal(existsSync(join(layout.buildsDir, '4')), false);
      for (const name of ['3', '5', '.tmp-6-abc', 'notes']) assert.ok(existsSync(join(layout.buildsDir, name)), name);
      assert.deepEqual(await retention.sweep(), { swept: [], leftovers: [] }, 'once per process');
      assert.equal(asked.length, 1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('no builds directory yet: nothing to do', async () => {
    const layout = new ImageLayout(join(tmpdir(), 'metal-retention-missing-' + process.pid));
    assert.deepEqual(await layout.publishedBuildIds(), []);
  });
});
