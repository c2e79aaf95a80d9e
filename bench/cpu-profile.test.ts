import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summariseProfile, type CpuProfile } from './cpu-profile.ts';

const frame = (id: number, functionName: string, url: string, lineNumber: number, hitCount: number) => ({ id, callFrame: { functionName, url, lineNumber }, hitCount });

describe('summariseProfile', () => {
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 1_000_000, // 1 s in microseconds over 100 hits: 10 ms a hit
    nodes: [
      frame(1, '(root)', '', 0, 0),
      frame(2, '(idle)', '', 0, 50),
      frame(3, 'renderBootScript', 'file:///app/src/boot/render.ts', 9, 30),
      frame(4, 'renderBootScript', 'file:///app/src/boot/render.ts', 9, 5),
      frame(5, '', 'node:internal/streams', 3, 15),
    ],
  };

  it('adds up self time per function, leaves idle out, and largest first', () => {
    const s = summariseProfile(profile, 'boot', 10, '/app');
    assert.equal(s.totalMs, 500);
    assert.deepEqual(s.frames, [
      { frame: 'renderBootScript src/boot/render.ts:10', selfMs: 350, percent: 70 },
      { frame: '(anonymous) node:internal/streams:4', selfMs: 150, percent: 30 },
    ]);
  });

  it('keeps only the top frames asked for', () => {
    assert.equal(summariseProfile(profile, 'boot', 1, '/app').frames.length, 1);
  });
});
