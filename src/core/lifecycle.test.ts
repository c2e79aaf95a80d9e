import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConflictError } from './errors.ts';
import { assertBuildTransition, assertMachineTransition, canBuildTransition, canMachineTransition } from './lifecycle.ts';

describe('machine lifecycle', () => {
  const legal: Array<[Parameters<typeof canMachineTransition>[0], Parameters<typeof canMachineTransition>[1]]> = [
    ['enrolled', 'configured'],
    ['configured', 'building'],
    ['building', 'ready'],
    ['building', 'failed'],
    ['ready', 'building'],
    ['failed', 'building'],
  ];
  for (const [from, to] of legal) test(`${from} → ${to} is legal`, () => assert.equal(canMachineTransition(from, to), true));
  const illegal: typeof legal = [
    ['enrolled', 'ready'],
    ['configured', 'ready'],
    ['ready', 'failed'],
    ['failed', 'ready'],
    ['configured', 'enrolled'],
  ];
  for (const [from, to] of illegal) {
    test(`${from} → ${to} is an error, not a silent write`, () =>
      assert.throws(() => assertMachineTransition(from, to, 'test'), (e: unknown) => e instanceof ConflictError && e.message.includes(`${from} to ${to}`)));
  }
});

describe('build lifecycle', () => {
  test('pending → building → success', () => {
    assert.equal(canBuildTransition('pending', 'building'), true);
    assert.equal(canBuildTransition('building', 'success'), true);
  });
  test('a lost builder returns a building build to pending', () => assert.equal(canBuildTransition('building', 'pending'), true));
  for (const from of ['success', 'failed', 'cancelled'] as const) {
    test(`${from} is final`, () => {
      for (const to of ['pending', 'building', 'success', 'failed', 'cancelled'] as const) assert.equal(canBuildTransition(from, to), false);
      assert.throws(() => assertBuildTransition(from, 'building', 'test'), ConflictError);
    });
  }
  test('pending cannot jump to success', () => assert.equal(canBuildTransition('pending', 'success'), false));
});
