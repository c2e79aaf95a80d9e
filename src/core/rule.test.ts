import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertRuleFields, describeRuleMatch, describeRuleSet, firstMatchingRule, ruleMatches, type Rule, type RuleMatch } from './rule.ts';

const dell = {
  service_tag: 'CZJ9450B2K',
  mac_address: '3c:ec:ef:00:00:01',
  labels: { env: 'prod' },
  hardware: {
    manufacturer: 'Dell Inc.',
    model: 'PowerEdge R740',
    cpu: { threads: 80 },
    memory: { total_bytes: 412_316_860_416 },
    disks: [{ size_bytes: 960_197_124_096 }, { size_bytes: 960_197_124_096 }],
    gpus: [{ vendor: 'NVIDIA' }],
    nics: [
      { name: 'eno1', lldp: { system_name: 'leaf-r12-a', port_id: 'Ethernet12', port_description: 'r12-u07' } },
      { name: 'eno2', lldp: { chassis_id: '44:4c:a8:00:00:09', port_description: 'Gi1/0/7' } },
      { name: 'eno3' },
      { name: 'eno4', lldp: 'not an object' },
    ],
  },
};

describe('rule matching', () => {
  const cases: Array<[string, RuleMatch, boolean]> = [
    ['an empty match matches every machine', {}, true],
    ['manufacturer glob, case-insensitive', { manufacturer: 'dell*' }, true],
    ['model glob with ?', { model: 'PowerEdge R7?0' }, true],
    ['model glob that does not match', { model: 'ProLiant*' }, false],
    ['service tag glob', { service_tag: 'CZJ*' }, true],
    ['MAC prefix', { mac: '3c:ec:ef' }, true],
    ['another MAC prefix', { mac: '52:54:00' }, false],
    ['cpu threads in range', { cpu_threads: { min: 64 } }, true],
    ['cpu threads above max', { cpu_threads: { max: 64 } }, false],
    ['memory range', { memory_bytes: { min: 256 * 2 ** 30, max: 512 * 2 ** 30 } }, true],
    ['disk count', { disk_count: { min: 2, max: 2 } }, true],
    ['total disk bytes', { disk_bytes: { min: 1_900_000_000_000 } }, true],
    ['gpu true', { gpu: true }, true],
    ['gpu false', { gpu: false }, false],
    ['labels selector', { labels: 'env=prod' }, true],
    ['labels selector that does not hold', { labels: 'env in (dev)' }, false],
    ['every condition must hold (AND)', { manufacturer: 'Dell*', gpu: false }, false],
    ['a glob\'s regex characters are literal', { model: 'PowerEdge.R740' }, false],
    ['switch: the LLDP system name of a switch a NIC is cabled to', { switch: 'leaf-r12-*' }, true],
    ['switch: another rack', { switch: 'leaf-r13-*' }, false],
    ['switch: a switch without a name is matched by its chassis id', { switch: '44:4c:a8:*' }, true],
    ['switch_port: the port id', { switch_port: 'Ethernet1?' }, true],
    ['switch_port: the description when there is no port id', { switch_port: 'Gi1/0/7' }, true],
    ['switch and switch_port hold for the same NIC', { switch: 'leaf-r12-a', switch_port: 'Ethernet12' }, true],
    ['switch and switch_port of two different NICs do not match', { switch: 'leaf-r12-a', switch_port: 'Gi1/0/7' }, false],
  ];
  for (const [rule, match, expected] of cases) test(rule, () => assert.equal(ruleMatches(match, dell), expected));

  test('a missing fact does not match a range', () => {
    assert.equal(ruleMatches({ cpu_threads: { min: 1 } }, { ...dell, hardware: {} }), false);
  });

  test('a machine whose NICs heard no switch matches no switch condition, even *', () => {
    assert.equal(ruleMatches({ switch: '*' }, { ...dell, hardware: { nics: [{ name: 'eno1' }] } }), false);
    assert.equal(ruleMatches({ switch_port: '*' }, { ...dell, hardware: {} }), false);
  });

  test('the first enabled rule by priority, then id, applies', () => {
    const rule = (id: number, priority: number, enabled = true): Rule => ({ id, name: `r${id}`, priority, match: {}, set: { labels: { a: 'b' } }, build: false, enabled, created_at: '', updated_at: '' });
    assert.equal(firstMatchingRule([rule(1, 20), rule(2, 10), rule(3, 10)], dell)?.id, 2);
    assert.equal(firstMatchingRule([rule(1, 20), rule(2, 10, false)], dell)?.id, 1);
    assert.equal(firstMatchingRule([], dell), undefined);
  });
});

describe('rule validation', () => {
  const refused: Array<[string, unknown, RegExp]> = [
    ['an unknown condition is named', { name: 'r', match: { vendor: 'x' }, set: { labels: {} }, build: true }, /match\.vendor: unknown condition/],
    ['a bad selector is named', { name: 'r', match: { labels: 'a in (' }, build: true }, /match\.labels/],
    ['a range that matches nothing', { name: 'r', match: { cpu_threads: { min: 8, max: 4 } }, build: true }, /nothing would match/],
    ['a range with unknown ends', { name: 'r', match: { cpu_threads: { least: 8 } }, build: true }, /unknown field "least"/],
    ['a bad MAC prefix', { name: 'r', match: { mac: '3c:e' }, build: true }, /MAC prefix/],
    ['a bad pattern in set', { name: 'r', set: { hostname_pattern: 'web' } }, /numbers would collide/],
    ['a bad profile name in set', { name: 'r', set: { profile: 'Web!' } }, /set\.profile/],
    ['a rule that does nothing', { name: 'r', match: {} }, /must set a profile, labels or a hostname pattern, or build/],
    ['a bad name', { name: 'R 1', build: true }, /name: must be a DNS label/],
    ['an unknown field', { name: 'r', build: true, when: 'x' }, /when: unknown field/],
    ['bad labels in set', { name: 'r', set: { labels: { 'a b': 'c' } } }, /label key/],
    ['an empty switch glob', { name: 'r', match: { switch: '' }, build: true }, /match\.switch: must be a glob/],
    ['a switch port glob that is not text', { name: 'r', match: { switch_port: 12 }, build: true }, /match\.switch_port: must be a glob/],
  ];
  for (const [rule, body, message] of refused) test(`refused: ${rule}`, () => assert.throws(() => assertRuleFields(body), message));

  test('defaults: priority 100, enabled, no build', () => {
    assert.deepEqual(assertRuleFields({ name: 'web', set: { profile: 'web' } }), { name: 'web', priority: 100, match: {}, set: { profile: 'web' }, build: false, enabled: true });
  });
});

test('a rule in words: what it matches and what it gives', () => {
  assert.equal(describeRuleMatch({}), 'every machine');
  assert.equal(
    describeRuleMatch({ manufacturer: 'Dell*', mac: '3c:ec:ef', cpu_threads: { min: 32 }, memory_bytes: { min: 68719476736, max: 274877906944 }, disk_count: { max: 4 }, disk_bytes: { min: 960000000000, max: 960000000000 }, gpu: false, switch: 'leaf-r12-*', labels: 'env=prod' }),
    'manufacturer Dell*, MAC 3c:ec:ef…, CPU threads ≥ 32, memory 64 GiB–256 GiB, disks ≤ 4, disk space 960 GB, no GPU, switch leaf-r12-*, labels env=prod',
  );
  assert.equal(describeRuleSet({}), 'nothing');
  assert.equal(describeRuleSet({ profile: 'web', labels: { role: 'web', rack: 'r12' }, hostname_pattern: 'web-{n}' }), 'profile web, labels role=web,rack=r12, hostname web-{n}');
});
