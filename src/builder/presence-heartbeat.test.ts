import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { pino } from 'pino';
import { pollUntil } from '../../test/support/poll.ts';
import { BUILDER_FORGOTTEN_AFTER_MS } from '../core/builder-presence.ts';
import { startPresenceHeartbeat } from './presence-heartbeat.ts';

const self = { name: 'b1', concurrency: 2, bootCheck: 'booted', secureBoot: 'CN=Site db' };

describe('the builder heartbeat', () => {
  test('writes the row at once and again each beat with what runs, forgets builders silent for a day, removes its own on stop', async () => {
    const storage = new MemoryStorage();
    const dead = new Date(Date.now() - BUILDER_FORGOTTEN_AFTER_MS - 1000).toISOString();
    await storage.builderPresence.put({ ...self, name: 'dead', startedAt: dead, lastSeenAt: dead, running: 1 });
    let running = 0;
    const heartbeat = await startPresenceHeartbeat(storage.builderPresence, self, () => running, pino({ level: 'silent' }), 20);
    const [first] = await storage.builderPresence.list();
    assert.deepEqual({ ...first, startedAt: 'x', lastSeenAt: 'x' }, { ...self, startedAt: 'x', lastSeenAt: 'x', running: 0 });
    assert.equal((await storage.builderPresence.list()).length, 1, 'the day-old row went');
    running = 2;
    const later = await pollUntil('a later beat says 2 builds run', async () => (await storage.builderPresence.list()).find((b) => b.running === 2), { timeoutMs: 5000 });
    assert.ok(later.lastSeenAt >= first!.lastSeenAt);
    assert.equal(later.startedAt, first!.startedAt, 'started once');
    await heartbeat.stop();
    assert.deepEqual(await storage.builderPresence.list(), []);
  });

  test('a database that does not answer is logged once and tried again; the builder is not stopped by it', async () => {
    const storage = new MemoryStorage();
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    storage.failing = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    const heartbeat = await startPresenceHeartbeat(storage.builderPresence, self, () => 0, logger, 20);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(lines.filter((l) => l.includes('could not say it is running')).length, 1, lines.join(''));
    storage.failing = undefined;
    await pollUntil('the row is written once the database is back', async () => (await storage.builderPresence.list()).length === 1, { timeoutMs: 5000 });
    await pollUntil('the recovery is logged', () => lines.some((l) => l.includes('its heartbeat is written again')), { timeoutMs: 5000 });
    await heartbeat.stop();
  });
});
