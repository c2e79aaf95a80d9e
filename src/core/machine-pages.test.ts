import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { machinePages } from './machine-pages.ts';

const NOW = '2026-01-02T03:04:05.000Z';

test('machinePages walks every machine meeting the conditions, a page at a time, by id', async () => {
  const storage = new MemoryStorage();
  for (let n = 1; n <= 5; n++) {
    const mac = `52:54:00:00:00:0${n}`;
    const m = (await storage.machines.insertEnrolled({ service_tag: `P${n}`, mac_address: mac, hardware: {}, identity_mac: mac, system_uuid: null, identity_conflict: null }, NOW))!;
    if (n !== 3) await storage.machines.update(m.id, { profile: 'web' }, NOW);
  }
  const walk = async (size: number, conditions = {}) => {
    const pages: string[][] = [];
    for await (const page of machinePages(storage.machines, conditions, size)) pages.push(page.map((m) => m.service_tag));
    return pages;
  };
  assert.deepEqual(await walk(2, { profile: 'web' }), [['P1', 'P2'], ['P4', 'P5']], 'a full last page ends with one read that finds nothing');
  assert.deepEqual(await walk(3), [['P1', 'P2', 'P3'], ['P4', 'P5']]);
  assert.deepEqual(await walk(2, { profile: 'db' }), [], 'nothing meets them: no page');
});
