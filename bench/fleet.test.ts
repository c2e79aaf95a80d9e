import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { migrate, openDatabase } from '../src/storage/database.ts';
import { testDatabaseKinds } from '../test/support/databases.ts';
import { fleetTag, seedFleet } from './fleet.ts';

for (const kind of await testDatabaseKinds()) {
  describe(`seedFleet (${kind.name})`, () => {
    it('stores the machines, half ready with a published image on disk, half waiting', async () => {
      const database = kind.fresh();
      const imagesDir = mkdtempSync(join(tmpdir(), 'metal-bench-fleet-'));
      const db = await openDatabase(database.url);
      try {
        await migrate(db);
        const fleet = await seedFleet(db, { count: 9, imagesDir });
        assert.equal(fleet.withImage, 4);
        const rows = await db.db.selectFrom('machines').select(['service_tag', 'status', 'image_build_id']).orderBy('id').execute();
        assert.deepEqual(rows.map((r) => r.service_tag), Array.from({ length: 9 }, (_, i) => fleetTag(i + 1)));
        assert.deepEqual(rows.map((r) => r.status), ['configured', 'ready', 'configured', 'ready', 'configured', 'ready', 'configured', 'ready', 'configured']);
        const builds = await db.db.selectFrom('builds').select(['id', 'machine_id', 'status']).execute();
        assert.equal(builds.length, 4);
        assert.ok(builds.every((b) => b.status === 'success'));
        assert.equal(fleet.sampleReady.tag, 'BENCH00002');
        const dir = join(imagesDir, 'builds', String(fleet.sampleReady.buildId));
        const bootJson = JSON.parse(readFileSync(join(dir, 'boot.json'), 'utf8')) as { init: string; kernel_params: string[]; files: Record<string, { size: number }> };
        assert.match(bootJson.init, /^\/nix\/store\/[0-9a-f]{32}-nixos-system-bench00002\/init$/);
        assert.equal(bootJson.files.initrd!.size, readFileSync(join(dir, 'initrd')).length);
        assert.equal(readlinkSync(join(imagesDir, 'machines', 'BENCH00002')), `../builds/${fleet.sampleReady.buildId}`);
        assert.equal(fleet.sampleWaiting.tag, 'BENCH00001');
        readFileSync(join(imagesDir, 'registration', 'boot.json'));
      } finally {
        await db.close();
        await database.cleanup();
        rmSync(imagesDir, { recursive: true, force: true });
      }
    });
  });
}
