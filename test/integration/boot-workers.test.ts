import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYSTEM_ACTOR } from '../../src/core/types.ts';
import { createContext, type AppContext } from '../../src/server/context.ts';
import { createLogger } from '../../src/core/logger.ts';
import { loadConfig } from '../../src/config/config.ts';
import { enrollmentPayload, headerAuthenticator } from '../support/context.ts';
import { testDatabaseKinds, type TestDatabase } from '../support/databases.ts';
import { pollUntil } from '../support/poll.ts';
import { runMetal, startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { respawnDelayMs } from '../../src/server/boot-workers.ts';

// `metal boot --workers 2`: two processes share the port, each with its own decision table; a change
// made elsewhere reaches every one of them (the product's bar is 1 s; the deadline allows for load).
const DEADLINE_MS = 2000;

for (const kind of await testDatabaseKinds()) {
  describe(`metal boot --workers 2 on ${kind.name}`, () => {
    let db: TestDatabase;
    let dataDir: string;
    let boot: ServerProcess;
    let writer: AppContext;
    before(async () => {
      db = kind.fresh();
      dataDir = mkdtempSync(join(tmpdir(), 'metal-workers-'));
      boot = await startServerProcess(['boot', '--workers', '2'], { METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: db.url, METAL_BOOT_URL: 'http://10.0.2.100' });
      const config = loadConfig({ METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: db.url, METAL_BOOT_URL: 'http://10.0.2.100', METAL_LOG_LEVEL: 'silent' });
      writer = await createContext(config, createLogger('silent'), { authenticator: headerAuthenticator });
    });
    after(async () => {
      boot.child.kill('SIGTERM');
      const code = await Promise.race([boot.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000))]);
      await writer.close();
      await db.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
      assert.equal(code, 0, 'the primary and its workers stop cleanly on SIGTERM');
    });

    test('every worker answers, and every one serves a machine enrolled elsewhere', { timeout: 60_000 }, async () => {
      const url = `${boot.addresses.boot}/nixos/machines/WORKERS1.ipxe`;
      const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(url).then((r) => r.text())));
      assert.ok(answers.every((a) => /registration/.test(a)));
      await writer.machines.enroll(enrollmentPayload('WORKERS1'), SYSTEM_ACTOR);
      const started = Date.now();
      for (;;) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => fetch(url).then((r) => r.text())));
        if (batch.every((a) => /has no image yet/.test(a))) break;
        assert.ok(Date.now() - started < DEADLINE_MS, `a worker still serves the old decision after ${DEADLINE_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });

    test('a worker killed once they are up is started again, and the port keeps answering', { timeout: 60_000 }, async () => {
      const workers = () =>
        readFileSync(`/proc/${boot.child.pid}/task/${boot.child.pid}/children`, 'utf8')
          .split(' ')
          .filter(Boolean)
          .map(Number);
      const before = workers();
      assert.equal(before.length, 2, 'two workers');
      let output = '';
      const listen = (d: Buffer) => (output += d.toString());
      boot.child.stdout!.on('data', listen);
      process.kill(before[0]!, 'SIGKILL');
      const after = await pollUntil(
        'a new worker in place of the killed one',
        () => {
          const now = workers();
          return now.length === 2 && !now.includes(before[0]!) && now;
        },
        { timeoutMs: 20_000, intervalMs: 100, state: workers },
      );
      assert.ok(after.includes(before[1]!), 'the other worker was left alone');
      const fresh = after.find((pid) => pid !== before[1])!;
      const logged = (pattern: RegExp) => output.split('\n').some((line) => pattern.test(line));
      await pollUntil('the new worker listens', () => logged(new RegExp(`"worker_pid":${fresh},.*a worker was started again and listens`)), {
        timeoutMs: 20_000,
        intervalMs: 100,
        state: () => output.slice(-1000),
      });
      boot.child.stdout!.off('data', listen);
      assert.ok(logged(new RegExp(`"worker_pid":${before[0]},.*"signal":"SIGKILL".*a worker died; starting another in 1 s`)), output.slice(-2000));
      const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${boot.addresses.boot}/healthz`).then((r) => r.status)));
      assert.deepEqual(new Set(answers), new Set([200]));
    });
  });
}

describe('metal boot --workers 2 that cannot start', () => {
  test('a taken port stops the primary and every worker with the reason, said once, as one process would', { timeout: 90_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'metal-workers-'));
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const r = await runMetal(['boot', '--workers', '2'], { METAL_DATA_DIR: dataDir, METAL_BOOT_LISTEN: `127.0.0.1:${port}`, METAL_LOG_LEVEL: 'error' }, undefined, 60_000);
      assert.equal(r.code, 1, `exits with 1 instead of starting workers again and again:\n${r.stderr.slice(-2000)}`);
      const said = r.stderr.split('\n').filter((line) => line.startsWith('metal: could not start'));
      assert.deepEqual(said, [`metal: could not start: METAL_BOOT_LISTEN: 127.0.0.1:${port} is already in use; pick another address with METAL_BOOT_LISTEN`]);
    } finally {
      holder.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a worker that dies once up is started again after 1 s, then 2, 4 … up to 30 s in a row', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(respawnDelayMs), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });
});
