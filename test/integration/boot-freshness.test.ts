import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { SYSTEM_ACTOR } from '../../src/core/types.ts';
import { buildBootServer } from '../../src/server/roles.ts';
import { createContext, type AppContext } from '../../src/server/context.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createTestContext, enrollmentPayload, headerAuthenticator, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';

// The boot server answers from its in-memory table; a change made through another process (here:
// another context with its own connection and its own in-process signals) must reach it through the
// change feed alone. The product's bar is 1 s; the deadline leaves room for a loaded CI machine.
const DEADLINE_MS = 1500;
const operator = { kind: 'user', name: 'op', role: 'operator' } as const;

async function scriptKindWithin(boot: FastifyInstance, tag: string, wanted: RegExp, deadlineMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const body = (await boot.inject({ url: `/nixos/machines/${tag}.ipxe` })).body;
    if (wanted.test(body)) return Date.now() - started;
    if (Date.now() - started > deadlineMs) assert.fail(`after ${deadlineMs} ms the boot server still answered:\n${body}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

for (const kind of await testDatabaseKinds()) {
  describe(`boot decisions follow changes made elsewhere, on ${kind.name}`, () => {
    let t: TestContext;
    let other: AppContext;
    let boot: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh());
      other = await createContext(t.config, createLogger('silent'), { authenticator: headerAuthenticator });
      boot = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    });
    after(async () => {
      await boot.close();
      await other.close();
      await t.close();
    });

    test('a machine enrolled, configured and built through another process is held, then deleted', { timeout: 30_000 }, async () => {
      assert.match((await boot.inject({ url: '/nixos/machines/FRESH01.ipxe' })).body, /registration/);
      await other.machines.enroll(enrollmentPayload('FRESH01'), SYSTEM_ACTOR);
      await scriptKindWithin(boot, 'FRESH01', /has no image yet/, DEADLINE_MS);
      await other.machines.update('FRESH01', { hostname: 'fresh-01', nixos_config: '{ ... }: { }' }, operator);
      await other.machines.requestBuild('FRESH01', operator);
      await scriptKindWithin(boot, 'FRESH01', /has a build in progress/, DEADLINE_MS);
      await other.machines.remove('FRESH01', operator);
      await scriptKindWithin(boot, 'FRESH01', /registration/, DEADLINE_MS);
    });
  });
}
