import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { CONTROL_CHARACTER, MAX_HEALTH_CHECK_LENGTH, PROFILE_KERNEL_PARAM } from '../../src/core/profile.ts';
import { HOSTNAME_PATTERN } from '../../src/core/validation.ts';
import { buildApiServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileJson, hostileString, macFor, pct, runs } from '../support/hostile.ts';
import { fleetCounts } from '../support/fleet-counts.ts';

/**
 * Generated requests to the fleet endpoints (profiles, rules, preview, apply, bulk, a machine's
 * profile): never a 5xx, an error body on every refusal, and no row written or changed by one. What
 * is accepted stays inside the rules: kernel parameters of the safe charset, DNS-label hostnames.
 */

const operator = { 'x-test-role': 'operator' };

/** Pattern-shaped strings: placeholders (known and not) and text, glued together. */
const patternish = fc
  .array(fc.oneof(fc.constantFrom('{n}', '{n:03}', '{n:0}', '{tag}', '{label.rack}', '{label.}', '{id}', '{', '}', 'web-', '-', 'Web', '.', '{n}{n}'), hostileString(10)), { maxLength: 5 })
  .map((parts) => parts.join(''));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const profileName = fc.oneof(fc.constantFrom('web', 'db', 'nope', 'Web', 'a'.repeat(64), '-x'), hostileString(70));
const labelsMap = fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('role', 'rack', 'a/b', 'example.com/x'), hostileString(20)), fc.oneof(fc.constantFrom('web', 'r12', ''), hostileString(70)), { maxKeys: 4 }), hostileJson(2));
const selector = fc.oneof(fc.constantFrom('role=web', 'role in (web,db)', '!gpu', 'role!=db', '', 'role', 'rack=r12,role=web'), hostileString(60));

const profileBody = fc.record(
  {
    name: profileName,
    description: fc.oneof(hostileString(), fc.constant(null)),
    nixos_config: fc.oneof(hostileString(200), fc.constant('{ ... }: { }')),
    hostname_pattern: fc.oneof(patternish, fc.constant(null), hostileJson(1)),
    kernel_params: fc.oneof(fc.array(fc.oneof(fc.constantFrom('console=ttyS1,115200', 'init=/bin/sh', 'metal.x=1', 'a b', '${x}', 'q"'), hostileString(40)), { maxLength: 4 }), hostileJson(1)),
    auto_build: fc.oneof(fc.boolean(), hostileJson(1)),
    skip_boot_check: fc.oneof(fc.boolean(), hostileJson(1)),
    health_check: fc.oneof(fc.constantFrom('systemctl is-active nginx', 'a\nb', 'x\u0000y', '', '   ', 'x'.repeat(1025), '"$(reboot)";`id`'), hostileString(80), fc.constant(null), hostileJson(1)),
    extra: hostileJson(1),
  },
  { requiredKeys: [] },
);

const ruleBody = fc.record(
  {
    name: fc.oneof(fc.constantFrom('r1', 'dell', 'R1'), hostileString(70)),
    priority: fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), hostileJson(1)),
    match: fc.oneof(
      fc.record(
        {
          manufacturer: fc.oneof(fc.constantFrom('Dell*', '*', '?'), hostileString(140)),
          model: hostileString(),
          mac: fc.oneof(fc.constantFrom('02', '02:ab', 'zz'), hostileString(20)),
          cpu_threads: fc.oneof(fc.record({ min: fc.integer({ min: -2, max: 200 }), max: fc.integer({ min: -2, max: 200 }) }, { requiredKeys: [] }), hostileJson(1)),
          gpu: hostileJson(1),
          labels: selector,
        },
        { requiredKeys: [] },
      ),
      hostileJson(2),
    ),
    set: fc.oneof(fc.record({ profile: profileName, labels: labelsMap, hostname_pattern: patternish }, { requiredKeys: [] }), hostileJson(2)),
    build: fc.oneof(fc.boolean(), hostileJson(1)),
    enabled: fc.oneof(fc.boolean(), hostileJson(1)),
  },
  { requiredKeys: [] },
);

const bulkBody = fc.record(
  {
    action: fc.oneof(fc.constantFrom('set', 'build', 'power'), hostileString(10)),
    selector,
    ids: fc.oneof(fc.array(fc.oneof(fc.constantFrom('FLEET1', 'FLEET2', 'id:1', 'tag:1', 'NOSUCH'), hostileString(80)), { maxLength: 3 }), hostileJson(1)),
    profile: fc.oneof(profileName, fc.constant(null)),
    in_profile: fc.oneof(profileName, hostileJson(1)),
    out_of_date: fc.oneof(fc.boolean(), hostileJson(1)),
    labels: labelsMap,
    hostname_pattern: patternish,
    dry_run: fc.oneof(fc.boolean(), hostileJson(1)),
    power: hostileJson(2),
  },
  { requiredKeys: [] },
);

/** One generated request: a method, a path and a body. */
const request = fc.oneof(
  profileBody.map((body) => ({ method: 'POST', url: '/api/v1/profiles', body })),
  fc.tuple(profileName, profileBody).map(([name, body]) => ({ method: 'PUT', url: `/api/v1/profiles/${pct(name)}`, body: { ...body, name: undefined } })),
  profileName.map((name) => ({ method: 'DELETE', url: `/api/v1/profiles/${pct(name)}`, body: undefined })),
  profileName.map((name) => ({ method: 'GET', url: `/api/v1/profiles/${pct(name)}`, body: undefined })),
  ruleBody.map((body) => ({ method: 'POST', url: '/api/v1/rules', body })),
  fc.tuple(fc.oneof(fc.constantFrom('1', 'dell', '0', '99999999999'), hostileString(40)), ruleBody).map(([ref, body]) => ({ method: 'PUT', url: `/api/v1/rules/${pct(ref)}`, body })),
  ruleBody.map((body) => ({ method: 'POST', url: '/api/v1/rules/preview', body })),
  fc.record({ selector: fc.oneof(selector, hostileJson(1)), rule: maybe(fc.oneof(fc.constantFrom('dell', '1'), hostileString(40))) }, { requiredKeys: [] }).map((body) => ({ method: 'POST', url: '/api/v1/rules/apply', body })),
  bulkBody.map((body) => ({ method: 'POST', url: '/api/v1/machines/bulk', body })),
  fc.oneof(profileName, fc.constant(null), hostileJson(1)).map((profile) => ({ method: 'PUT', url: '/api/v1/machines/FLEET1', body: { profile } })),
  fc.tuple(profileName, fc.oneof(fc.constantFrom('true', 'false', '1', 'yes'), hostileString(10))).map(([p, o]) => ({ method: 'GET', url: `/api/v1/machines?profile=${pct(p)}&out_of_date=${pct(o)}`, body: undefined })),
);

for (const kind of await testDatabaseKinds()) {
  describe(`hostile fleet requests on ${kind.name}`, { timeout: 300_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      const send = async (method: 'POST' | 'PUT', url: string, payload: object) => {
        const r = await api.inject({ method, url, headers: operator, payload });
        assert.ok(r.statusCode < 300, `${url}: ${r.body}`);
      };
      await send('POST', '/api/v1/profiles', { name: 'web', hostname_pattern: 'web-{n:02}' });
      await send('POST', '/api/v1/profiles', { name: 'db' });
      await send('POST', '/api/v1/rules', { name: 'dell', match: { manufacturer: 'Dell*' }, set: { profile: 'web', labels: { role: 'web' } } });
      for (const tag of ['FLEET1', 'FLEET2']) {
        const r = await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag, { mac_address: macFor(tag) }) });
        assert.equal(r.statusCode, 201);
      }
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    test('no 5xx, an error body on each refusal, nothing written by one, and what is accepted is safe', async () => {
      const snapshot = async () => JSON.stringify([await fleetCounts(t.ctx), (await t.ctx.storage.machines.list({ limit: 50, offset: 0 })).items, await t.ctx.storage.profiles.list(), await t.ctx.storage.rules.list()]);
      await fc.assert(
        fc.asyncProperty(request, async ({ method, url, body }) => {
          const before = await snapshot();
          const r = await api.inject({ method: method as 'POST', url, headers: operator, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { ...operator, 'content-type': 'application/json' } }) });
          const where = `${method} ${url} ${JSON.stringify(body)?.slice(0, 300)}: ${r.statusCode} ${r.body.slice(0, 300)}`;
          assert.ok(r.statusCode < 500, where);
          if (r.statusCode >= 400) {
            const error = (r.json() as { error?: { code?: unknown; message?: unknown } }).error;
            assert.equal(typeof error?.code, 'string', where);
            assert.equal(typeof error?.message, 'string', where);
            assert.equal(await snapshot(), before, `a refusal changed something: ${where}`);
          }
          for (const p of await t.ctx.storage.profiles.list()) {
            for (const k of p.kernel_params) assert.match(k, PROFILE_KERNEL_PARAM, where);
            if (p.health_check !== null) assert.ok(p.health_check.length <= MAX_HEALTH_CHECK_LENGTH && !CONTROL_CHARACTER.test(p.health_check), where);
          }
          for (const m of (await t.ctx.storage.machines.list({ limit: 50, offset: 0 })).items) if (m.hostname !== null) assert.match(m.hostname, HOSTNAME_PATTERN, where);
        }),
        { seed: 0x9e4e_0015, numRuns: runs(kind.name === 'sqlite' ? 300 : 100) },
      );
    });
  });
}
