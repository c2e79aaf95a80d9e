import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../test/support/memory-storage.ts';
import { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError, UnprocessableError } from './errors.ts';
import { MachineService } from './machine-service.ts';
import { Notifier } from './notifier.ts';
import { ProfileService } from './profile-service.ts';
import { MAX_RULE_MACHINES, RuleService } from './rule-service.ts';
import { parseSelector } from './labels.ts';
import type { Actor } from './types.ts';

// Rules at first enrollment, over the in-memory storage: milliseconds, no database.

const operator: Actor = { kind: 'user', name: 'op', role: 'operator' };
const NOW = '2026-01-02T03:04:05.000Z';

async function setup() {
  const storage = new MemoryStorage();
  const notifier = new Notifier();
  const builds = new BuildLifecycle(storage, notifier);
  const machines = new MachineService(storage, notifier, { async removeMachineImages() {} }, builds);
  const profiles = new ProfileService(storage, notifier, builds);
  const rules = new RuleService(storage, notifier, builds);
  const requested: number[] = [];
  notifier.on('build.requested', (id: number) => requested.push(id));
  await profiles.create({ name: 'web', hostname_pattern: 'web-{n:02}', auto_build: false }, operator);
  const enroll = (tag: string, mac: string, hardware: Record<string, unknown> = { manufacturer: 'Dell Inc.' }) =>
    machines.enroll({ service_tag: tag, mac_address: mac, hardware }, { kind: 'machine', name: tag });
  return { storage, machines, profiles, rules, enroll, requested };
}

describe('rules at first enrollment (in memory)', () => {
  test('the first matching rule by priority applies once: profile, labels, hostname, one build, an event naming it', async () => {
    const s = await setup();
    await s.rules.create({ name: 'catch-all', priority: 100, set: { labels: { role: 'unknown' } } }, operator);
    await s.rules.create({ name: 'dell', priority: 10, match: { manufacturer: 'Dell*' }, set: { profile: 'web', labels: { role: 'web' } }, build: true }, operator);
    const { machine } = await s.enroll('RULE0001', '52:54:00:00:09:01');
    assert.deepEqual([machine.profile, machine.labels, machine.hostname, machine.status], ['web', { role: 'web' }, 'web-01', 'building']);
    assert.equal(s.requested.length, 1, 'the build is signalled once the enrollment committed');
    const events = await s.storage.events.list({ machineId: machine.id });
    const applied = events.items.find((e) => e.kind === 'machine.rule_applied');
    assert.equal(applied?.message, `rule dell applied: profile web, labels, hostname web-01, build ${s.requested[0]}`);
    await s.machines.update('RULE0001', { labels: {} }, operator);
    const again = await s.enroll('RULE0001', '52:54:00:00:09:01');
    assert.deepEqual([again.created, again.machine.labels], [false, {}], 'a later enrollment applies nothing');
    const other = await s.enroll('RULE0002', '52:54:00:00:09:02', { manufacturer: 'HPE' });
    assert.deepEqual([other.machine.labels, other.machine.hostname, other.machine.status], [{ role: 'unknown' }, null, 'enrolled'], 'the catch-all');
  });

  test('a rule that cannot be applied leaves the machine enrolled and says why; the enrollment succeeds', async () => {
    const s = await setup();
    await s.rules.create({ name: 'by-rack', set: { hostname_pattern: 'node-{label.rack}-{n}' }, build: true }, operator);
    const { machine, created } = await s.enroll('RULE0003', '52:54:00:00:09:03');
    assert.deepEqual([created, machine.hostname, machine.status], [true, null, 'enrolled']);
    const failed = (await s.storage.events.list({ machineId: machine.id, kind: 'machine.rule_failed' })).items[0];
    assert.match(failed?.message ?? '', /rule by-rack could not be applied: RULE0003: hostname pattern node-\{label\.rack\}-\{n\} needs label rack/);
    assert.equal(s.requested.length, 0);
  });

  test('a machine created with an identity conflict gets no rule', async () => {
    const s = await setup();
    await s.rules.create({ name: 'all', set: { profile: 'web' }, build: true }, operator);
    await s.enroll('RULE0004', '52:54:00:00:09:04');
    await assert.rejects(s.enroll('RULE0005', '52:54:00:00:09:04'), ConflictError);
    const flagged = await s.machines.get('RULE0005');
    assert.deepEqual([flagged.profile, flagged.hostname], [null, null]);
  });

  test('profile auto_build builds what a rule gives the profile; a profile edit re-hashes its machines in the same change', async () => {
    const s = await setup();
    await s.profiles.update('web', { auto_build: true }, operator);
    await s.rules.create({ name: 'dell', match: { manufacturer: 'Dell*' }, set: { profile: 'web' } }, operator);
    const { machine } = await s.enroll('RULE0006', '52:54:00:00:09:06');
    assert.equal(machine.status, 'building');
    assert.equal(s.requested.length, 1);
    const before = (await s.storage.machines.list({ profile: 'web', outOfDate: true, limit: 10, offset: 0 })).total;
    const edited = await s.profiles.update('web', { nixos_config: '{ ... }: { networking.firewall.enable = false; }' }, operator);
    assert.deepEqual([before, edited.out_of_date, edited.machines], [1, 1, 1]);
    const build = (await s.storage.builds.findActiveForMachine(machine.id))!;
    const record = (await s.storage.builds.findRecord(build.id))!;
    assert.equal(record.profile_config, '{ ... }:\n{\n}\n', 'a queued build keeps the profile as it was when requested');
  });

  test('a pattern added to a profile names its machines that have no hostname', async () => {
    const s = await setup();
    await s.profiles.create({ name: 'db' }, operator);
    await s.enroll('RULE0007', '52:54:00:00:09:07');
    await s.enroll('RULE0008', '52:54:00:00:09:08');
    await s.machines.update('RULE0007', { profile: 'db' }, operator);
    await s.machines.update('RULE0008', { profile: 'db', hostname: 'keep-me' }, operator);
    assert.equal((await s.machines.get('RULE0007')).hostname, null, 'no pattern yet');
    const edited = await s.profiles.update('db', { hostname_pattern: 'db-{n:02}' }, operator);
    assert.equal(edited.machines, 2);
    assert.deepEqual([(await s.machines.get('RULE0007')).hostname, (await s.machines.get('RULE0008')).hostname], ['db-01', 'keep-me']);
    assert.equal((await s.machines.get('RULE0007')).status, 'configured');
  });

  test('past MAX_RULE_MACHINES a preview counts every match and works out the first; an apply refuses and changes nothing', { timeout: 60_000 }, async () => {
    const s = await setup();
    const fleet = MAX_RULE_MACHINES + 3;
    for (let n = 1; n <= fleet; n++) {
      const mac = `52:54:00:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
      await s.storage.machines.insertEnrolled({ service_tag: `BIG${n}`, mac_address: mac, hardware: { manufacturer: 'Dell Inc.' }, identity_mac: mac, system_uuid: null, identity_conflict: null }, NOW);
    }
    const preview = await s.rules.preview({ name: 'all-dell', match: { manufacturer: 'Dell*' }, set: { labels: { role: 'web' } } });
    assert.equal(preview.matched, fleet, 'every match is counted');
    assert.equal(preview.items.length, MAX_RULE_MACHINES, 'the changes of the first ones are worked out');
    assert.deepEqual([preview.items[0]?.service_tag, preview.items.at(-1)?.service_tag], ['BIG1', `BIG${MAX_RULE_MACHINES}`], 'the first by id');
    await s.rules.create({ name: 'all-dell', match: { manufacturer: 'Dell*' }, set: { labels: { role: 'web' } } }, operator);
    await assert.rejects(s.rules.apply({ selector: '' }, operator), (err: unknown) => {
      assert.ok(err instanceof UnprocessableError);
      assert.match(err.message, new RegExp(`matches ${fleet} machines; .*at most ${MAX_RULE_MACHINES}.*nothing was changed`));
      return true;
    });
    assert.deepEqual((await s.storage.machines.list({ limit: 1, offset: 0, selector: parseSelector('role=web') })).total, 0, 'no machine was changed');
  });
});
