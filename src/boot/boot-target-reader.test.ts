import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BootTargetReader } from './boot-target-reader.ts';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, macOfTag, type TestContext, sqlOf } from '../../test/support/context.ts';
import { SYSTEM_ACTOR } from '../core/types.ts';

for (const kind of await testDatabaseKinds()) {
  describe(`BootTargetReader on ${kind.name}`, () => {
    let t: TestContext;
    before(async () => {
      t = await createTestContext(kind.fresh());
      await t.ctx.machines.enroll(enrollmentPayload('CACHE1'), SYSTEM_ACTOR);
    });
    after(() => t.close());

    const source = () => ({
      findBootTarget: t.ctx.storage.machines.findBootTarget.bind(t.ctx.storage.machines),
      bootFacts: t.ctx.storage.builds.bootFacts.bind(t.ctx.storage.builds),
      findIdByImageKey: t.ctx.storage.builds.findIdByImageKey.bind(t.ctx.storage.builds),
    });
    const setStatus = (status: string) =>
      sqlOf(t.ctx).updateTable('machines').set({ status }).where('service_tag', '=', 'CACHE1').execute();

    test('without a TTL every lookup reads the database', async () => {
      const reader = new BootTargetReader(source());
      assert.equal((await reader.findMachine('service_tag', 'CACHE1'))?.status, 'enrolled');
      await setStatus('configured');
      assert.equal((await reader.findMachine('service_tag', 'CACHE1'))?.status, 'configured');
      await setStatus('enrolled');
    });

    test('with a TTL a lookup is reused until it expires or is forgotten', async () => {
      const reader = new BootTargetReader(source(), 60_000);
      assert.equal((await reader.findMachine('service_tag', 'CACHE1'))?.status, 'enrolled');
      assert.equal(await reader.findMachine('service_tag', 'NOSUCH'), undefined);
      await setStatus('configured');
      await t.ctx.machines.enroll(enrollmentPayload('NOSUCH'), { kind: 'machine', name: 'NOSUCH' });
      assert.equal((await reader.findMachine('service_tag', 'CACHE1'))?.status, 'enrolled', 'remembered');
      assert.equal(await reader.findMachine('service_tag', 'NOSUCH'), undefined, 'an unknown machine is remembered too');
      reader.forgetMachines();
      assert.equal((await reader.findMachine('service_tag', 'CACHE1'))?.status, 'configured');
      assert.equal((await reader.findMachine('service_tag', 'NOSUCH'))?.serviceTag, 'NOSUCH');
    });

    test('keys do not collide across lookup kinds', async () => {
      const reader = new BootTargetReader(source(), 60_000);
      assert.equal((await reader.findMachine('mac_address', macOfTag('CACHE1')))?.serviceTag, 'CACHE1');
      assert.equal(await reader.findMachine('service_tag', macOfTag('CACHE1')), undefined);
    });
  });
}
