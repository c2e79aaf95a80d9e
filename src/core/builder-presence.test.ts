import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUILDER_SILENT_AFTER_MS, builderStatuses, noBuilderNotice } from './builder-presence.ts';
import type { BuilderPresence } from './ports.ts';

const NOW = Date.parse('2026-11-30T12:00:00.000Z');
const row = (name: string, secondsAgo: number): BuilderPresence => ({
  name,
  startedAt: '2026-11-30T08:00:00.000Z',
  lastSeenAt: new Date(NOW - secondsAgo * 1000).toISOString(),
  concurrency: 1,
  running: 0,
  bootCheck: 'off',
  secureBoot: null,
});

describe('builder presence', () => {
  test('live while heard from within three heartbeats, silent after', async () => {
    const rows = [row('a', 0), row('b', BUILDER_SILENT_AFTER_MS / 1000), row('c', BUILDER_SILENT_AFTER_MS / 1000 + 1)];
    const statuses = await builderStatuses({ list: async () => rows }, NOW);
    assert.deepEqual(statuses.map((s) => [s.name, s.live]), [['a', true], ['b', true], ['c', false]]);
  });

  test('a waiting build says nothing while one builder is live; else that none runs, and which was heard from last', async () => {
    const statuses = (rows: BuilderPresence[]) => builderStatuses({ list: async () => rows }, NOW);
    assert.equal(noBuilderNotice(await statuses([row('a', 900), row('b', 5)])), undefined);
    assert.equal(
      noBuilderNotice(await statuses([])),
      'No builder is running. Builds wait until a builder takes them; start one (metal builder, or metal serve on a host with Nix; see docs/builder.md).',
    );
    assert.match(noBuilderNotice(await statuses([row('old', 7200), row('recent', 600)]))!, /^No builder is running: the last one, recent, was last heard from at 2026-11-30T11:50:00\.000Z\. /);
  });
});
