import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { enrollmentPayload } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { startReceiver } from '../support/webhook-receiver.ts';

const SECRET = 'durability-secret-0123456789';
const PASSWORD = 'correct horse battery staple';

describe('webhook outbox across a SIGKILL', () => {
  test('100 undelivered events are all delivered after a restart, in order, none twice to a receiver that answered 2xx', { timeout: 240_000 }, async () => {
    const database = freshSqlite();
    const dataDir = mkdtempSync(join(tmpdir(), 'metal-hooks-crash-'));
    // 2xx for the first 30 deliveries, then 503 until the server has been killed and restarted.
    let phase: 'accepting' | 'refusing' | 'restarted' = 'accepting';
    const acknowledged = new Map<string, number>();
    const receiver = await startReceiver(SECRET, (r) => {
      const id = String(r.headers['x-metal-delivery']);
      if (phase === 'accepting' && acknowledged.size >= 30) phase = 'refusing';
      if (phase === 'refusing') return 503;
      acknowledged.set(id, (acknowledged.get(id) ?? 0) + 1);
      return 200;
    });
    const env = { METAL_DATA_DIR: dataDir, METAL_DATABASE_URL: database.url, METAL_ADMIN_PASSWORD: PASSWORD, METAL_WEBHOOK_ALLOW_LOOPBACK: '1' };
    let server: ServerProcess | undefined;
    try {
      server = await startServerProcess(['serve', '--roles', 'api'], env);
      const base = server.addresses.api!;
      const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }), signal: AbortSignal.timeout(10_000) });
      const { token } = (await login.json()) as { token: string };
      const hook = await fetch(`${base}/api/v1/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ url: receiver.url, events: ['machine.enrolled'], secret: SECRET }),
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(hook.status, 201, await hook.clone().text());
      for (let i = 0; i < 130; i++) {
        const r = await fetch(`${base}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload(`DUR${String(i).padStart(3, '0')}`)), signal: AbortSignal.timeout(10_000) });
        assert.equal(r.status, 201);
      }
      // The 31st delivery was refused twice: the 30 before it are recorded as delivered, 100 wait.
      await receiver.waitFor('the 31st delivery refused twice', (got) => {
        const refused = got.filter((g) => g.answered === 503).map((g) => g.headers['x-metal-delivery']);
        return refused.length >= 2 && refused[0] === refused[1];
      });
      server.child.kill('SIGKILL');
      await server.exited;
      assert.equal(acknowledged.size, 30);
      phase = 'restarted';
      server = await startServerProcess(['serve', '--roles', 'api'], env);
      await receiver.waitFor('all 130 deliveries acknowledged', () => acknowledged.size >= 130, 180_000);
      const twice = [...acknowledged].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], 'no delivery acknowledged with 2xx was sent again');
      const ok = receiver.received.filter((r) => r.answered === 200);
      assert.ok(ok.every((r) => r.signatureValid), 'every delivery is signed');
      const tags = ok.map((r) => (JSON.parse(r.body) as { machine: { service_tag: string } }).machine.service_tag);
      assert.deepEqual(tags, Array.from({ length: 130 }, (_, i) => `DUR${String(i).padStart(3, '0')}`), 'delivered once each, in the order they enrolled');
    } finally {
      if (server && server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await server.exited;
      }
      await receiver.close();
      await database.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
