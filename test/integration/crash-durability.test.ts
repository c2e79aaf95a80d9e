import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { enrollmentPayload } from '../support/context.ts';
import { startServerProcess } from '../support/server-process.ts';

for (const kind of await testDatabaseKinds()) {
  describe(`a server killed with SIGKILL during an enrollment storm, on ${kind.name}`, () => {
    test('loses no enrollment it had answered with 2xx', async () => {
      const database = kind.fresh();
      const dataDir = mkdtempSync(join(tmpdir(), 'metal-crash-'));
      try {
        const { child, addresses, exited } = await startServerProcess(['serve', '--roles', 'api'], {
          METAL_DATA_DIR: dataDir,
          METAL_DATABASE_URL: database.url,
        });
        const base = addresses.api!;
        const acknowledged: string[] = [];
        let killed = false;
        let next = 0;
        // 16 clients enroll distinct tags until the server dies under them.
        const client = async () => {
          while (!killed && next < 5000) {
            const tag = `CRASH${next++}`;
            try {
              const res = await fetch(`${base}/api/v1/enroll`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(enrollmentPayload(tag)),
              });
              await res.arrayBuffer();
              if (res.status === 201) acknowledged.push(tag);
              if (acknowledged.length >= 300 && !killed) {
                killed = true;
                child.kill('SIGKILL');
              }
            } catch {
              // the server is gone; requests in flight fail, and were not acknowledged
            }
          }
        };
        await Promise.all(Array.from({ length: 16 }, client));
        await exited;
        assert.ok(killed, 'the server was killed mid-storm');
        assert.ok(acknowledged.length >= 300);

        const db = await openDatabase(database.url);
        try {
          await migrate(db);
          const rows = await db.db.selectFrom('machines').select('service_tag').execute();
          const stored = new Set(rows.map((r) => r.service_tag));
          const lost = acknowledged.filter((tag) => !stored.has(tag));
          assert.deepEqual(lost, [], 'every acknowledged enrollment is stored');
        } finally {
          await db.close();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
        await database.cleanup();
      }
    });
  });
}
