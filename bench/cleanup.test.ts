import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cleanupAll, forget, onCleanup } from './cleanup.ts';

describe('cleanup registry', () => {
  it('runs every cleanup once, newest first; one run early is not run again; a forgotten one never', async () => {
    const ran: string[] = [];
    onCleanup('first', () => void ran.push('first'));
    const early = onCleanup('early', () => void ran.push('early'));
    const dropped = onCleanup('dropped', () => void ran.push('dropped'));
    onCleanup('failing', () => {
      ran.push('failing');
      throw new Error('already gone');
    });
    onCleanup('last', async () => void ran.push('last'));
    await early();
    await early();
    forget(dropped);
    await cleanupAll();
    assert.deepEqual(ran, ['early', 'last', 'failing', 'first']);
    await cleanupAll();
    assert.equal(ran.length, 4);
  });
});
