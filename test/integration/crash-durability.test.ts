import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import { testDatabaseKinds } from '../../src/testing/databases.ts';
import { enrollmentPayload } from '../../src/testing/context.ts';

const METAL = new URL('../../bin/metal.js', import.meta.url).pathname;

/** Starts `metal serve --roles api` and resolves with its API address once it logs that it is ready. */
function startApi(env: Record<string, string>): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, [METAL, 'serve', '--roles', 'api'], {
    env: { ...process.env, ...env, METAL_LISTEN: '127.0.0.1:0', METAL_ENROLL_RATE: '0', METAL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not become ready in 60 s')), 60_000);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; addresses?: { api?: string } };
        if (entry.msg === 'metal: ready' && entry.addresses?.api) {
          clearTimeout(timer);
          resolve({ child, base: entry.addresses.api });
        }
      } catch {
        // not a log line
      }
    });
  });
}

for (const kind of await testDatabaseKinds()) {
  describe(`a server killed with SIGKILL during an enrollment storm, on ${kind.name}`, () => {
    test('loses no enrollment it had answered with 2xx', async () => {
      const database = kind.fresh();
      const dataDir = mkdtempSync(join(tmpdir(), 'metal-crash-'));
      try {
        const { child, base } = await startApi({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: database.url });
        const exited = new Promise((r) => child.once('exit', r));
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
