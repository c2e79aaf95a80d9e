import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { enrollmentPayload, createTestContext, type TestContext } from '../../test/support/context.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { FleetSummaryCache, SUMMARY_SLICE_ROWS, summarizeFleet, summarizeFleetInSlices } from './fleet-summary.ts';

describe('summarizeFleet', () => {
  test('counts statuses, sums capacity and ranks models and vendors', () => {
    const hw = (cores: number, mem: number, disk: number) => JSON.stringify({ cpu: { cores, threads: cores * 2 }, memory: { total_bytes: mem }, disks: [{ size_bytes: disk }] });
    const s = summarizeFleet([
      { status: 'ready', manufacturer: 'Dell Inc.', model: 'R740', hardware: hw(40, 100, 1000) },
      { status: 'ready', manufacturer: 'Dell Inc.', model: 'R740', hardware: hw(40, 100, 1000) },
      { status: 'enrolled', manufacturer: 'HPE', model: 'DL380', hardware: hw(8, 10, 10) },
      { status: 'failed', manufacturer: null, model: null, hardware: 'not json' },
      // A white-box board that says nothing counts as unknown, not as a vendor called "To Be Filled By O.E.M.".
      { status: 'enrolled', manufacturer: 'To Be Filled By O.E.M.', model: 'System Product Name', hardware: hw(0, 0, 0) },
    ]);
    assert.equal(s.total, 5);
    assert.deepEqual(s.byStatus, { enrolled: 2, configured: 0, building: 0, ready: 2, failed: 1 });
    assert.equal(s.cores, 88);
    assert.equal(s.threads, 176);
    assert.equal(s.memoryBytes, 210);
    assert.equal(s.diskBytes, 2010);
    assert.deepEqual(s.byModel, [['R740', 2], ['unknown model', 2], ['DL380', 1]]);
    assert.deepEqual(s.byVendor, [['Dell Inc.', 2], ['unknown vendor', 2], ['HPE', 1]]);
  });
});

describe('summarizeFleetInSlices', () => {
  const row = (hardware: string) => ({ status: 'ready', manufacturer: 'Dell Inc.', model: 'R740', hardware });
  const small = JSON.stringify({ cpu: { cores: 4, threads: 8 }, memory: { total_bytes: 1 }, disks: [{ size_bytes: 2 }] });

  test('the same totals as one pass, yielding every few hundred rows', async () => {
    const rows = Array.from({ length: SUMMARY_SLICE_ROWS * 4 + 7 }, () => row(small));
    let yields = 0;
    const sliced = await summarizeFleetInSlices(rows, async () => {
      yields += 1;
    });
    assert.deepEqual(sliced, summarizeFleet(rows));
    assert.equal(yields, 4);
  });

  test('large documents make it yield sooner: 10 documents of 300 KB yield after every second one', async () => {
    const big = JSON.stringify({ cpu: { cores: 1 }, notes: 'n'.repeat(300 * 1024) });
    let yields = 0;
    const s = await summarizeFleetInSlices(Array.from({ length: 10 }, () => row(big)), async () => {
      yields += 1;
    });
    assert.equal(s.cores, 10);
    assert.equal(yields, 5);
  });

  test('other work runs while a large fleet is summarized', async () => {
    const rows = Array.from({ length: SUMMARY_SLICE_ROWS * 3 }, () => row(small));
    const order: string[] = [];
    const summary = summarizeFleetInSlices(rows).then(() => order.push('summary'));
    setImmediate(() => order.push('other request'));
    await summary;
    assert.deepEqual(order, ['other request', 'summary']);
  });
});

for (const kind of await testDatabaseKinds()) {
  describe(`FleetSummaryCache on ${kind.name}`, () => {
    let t: TestContext;
    before(async () => {
      t = await createTestContext(kind.fresh());
    });
    after(async () => t.close());

    test('is recomputed after a machine changes, and reused until then', async () => {
      const cache = new FleetSummaryCache(t.ctx.storage.machines, t.ctx.notifier, 60_000);
      try {
        assert.equal((await cache.get()).total, 0);
        const first = cache.get();
        assert.equal(cache.get(), first, 'no change, same summary');
        await t.ctx.machines.enroll(enrollmentPayload('SUM001'), { kind: 'machine', name: 'SUM001' });
        const s = await cache.get();
        assert.equal(s.total, 1);
        assert.equal(s.cores, 40);
        assert.equal(s.byStatus.enrolled, 1);
      } finally {
        cache.close();
      }
    });
  });
}
