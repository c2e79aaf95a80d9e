import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { areaOf, summariseProfile, type CpuProfile } from './cpu-profile.ts';

const frame = (id: number, functionName: string, url: string, lineNumber: number, hitCount: number) => ({ id, callFrame: { functionName, url, lineNumber }, hitCount });

describe('areaOf', () => {
  const cases: Array<[string, string, string, string]> = [
    ['a scoped package', 'file:///app/node_modules/@fastify/ajv-compiler/index.js', 'f', '@fastify/ajv-compiler'],
    ['a package', 'file:///app/node_modules/kysely/dist/esm/x.js', 'f', 'kysely'],
    ['a folder of ours', 'file:///app/src/boot/ipxe-script.ts', 'f', 'src/boot'],
    ['Node internals', 'node:internal/streams/writable', 'f', 'node:internal'],
    ['a syscall', '', 'writev', 'native (syscalls, bindings)'],
    ['the garbage collector', '', '(garbage collector)', '(garbage collector)'],
  ];
  for (const [name, url, functionName, area] of cases) it(name, () => assert.equal(areaOf({ url, functionName, lineNumber: 0 }, '/app'), area));
});

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
    assert.deepEqual(s.areas, [
      { frame: 'src/boot', selfMs: 350, percent: 70 },
      { frame: 'node:internal', selfMs: 150, percent: 30 },
    ]);
  });

  it('keeps only the top frames asked for', () => {
    assert.equal(summariseProfile(profile, 'boot', 1, '/app').frames.length, 1);
  });
});
