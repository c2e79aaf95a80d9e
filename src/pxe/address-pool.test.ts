import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inRange, parseAddressRange, pickAddress, rangeInSubnet, type LeaseStore } from './address-pool.ts';

describe('parseAddressRange', () => {
  const cases: Array<[string, string, ReturnType<typeof parseAddressRange>]> = [
    ['a range of two addresses', '10.0.0.100-10.0.0.200', { first: '10.0.0.100', last: '10.0.0.200' }],
    ['one address', '10.0.0.5-10.0.0.5', { first: '10.0.0.5', last: '10.0.0.5' }],
    ['no dash', '10.0.0.100', 'expected first-last, e.g. 10.0.0.100-10.0.0.200'],
    ['an end that is not an address', '10.0.0.1-10.0.0.300', 'both ends must be IPv4 addresses'],
    ['reversed', '10.0.0.9-10.0.0.1', 'the first address is after the last'],
    ['too large', '10.0.0.0-10.2.0.0', 'at most 65536 addresses'],
  ];
  for (const [rule, value, expected] of cases) test(rule, () => assert.deepEqual(parseAddressRange(value), expected));
});

test('rangeInSubnet: inside the subnet, never its network or broadcast address', () => {
  const r = (first: string, last: string) => ({ first, last });
  assert.equal(rangeInSubnet(r('10.0.0.100', '10.0.0.200'), '10.0.0.1', '255.255.255.0'), true);
  assert.equal(rangeInSubnet(r('10.0.0.0', '10.0.0.10'), '10.0.0.1', '255.255.255.0'), false);
  assert.equal(rangeInSubnet(r('10.0.0.100', '10.0.0.255'), '10.0.0.1', '255.255.255.0'), false);
  assert.equal(rangeInSubnet(r('10.0.1.100', '10.0.1.200'), '10.0.0.1', '255.255.255.0'), false);
  assert.equal(inRange(r('10.0.0.100', '10.0.0.200'), '10.0.0.150'), true);
  assert.equal(inRange(r('10.0.0.100', '10.0.0.200'), '10.0.0.201'), false);
});

/** A lease store in memory, for the picking rules alone (the real one is tested in storage). */
function memoryLeases(initial: Array<{ mac: string; address: string; expiresAt: string }>): LeaseStore {
  const leases = [...initial];
  return {
    async leaseOf(mac) {
      return leases.find((l) => l.mac === mac);
    },
    async heldAddresses(now) {
      return new Set(leases.filter((l) => l.expiresAt > now).map((l) => l.address));
    },
    async claim() {
      return true;
    },
    async release() {},
  };
}

describe('pickAddress', () => {
  const range = { first: '10.0.0.10', last: '10.0.0.12' };
  const NOW = '2026-01-01T00:00:00.000Z';
  const LATER = '2026-01-01T01:00:00.000Z';
  const EARLIER = '2025-12-31T00:00:00.000Z';

  test('a client gets its own lease again', async () => {
    assert.equal(await pickAddress(memoryLeases([{ mac: 'a', address: '10.0.0.12', expiresAt: LATER }]), range, 'a', undefined, '10.0.0.1', NOW), '10.0.0.12');
  });
  test('an expired lease of its own that nobody took is still offered', async () => {
    assert.equal(await pickAddress(memoryLeases([{ mac: 'a', address: '10.0.0.12', expiresAt: EARLIER }]), range, 'a', undefined, '10.0.0.1', NOW), '10.0.0.12');
  });
  test('the address it asks for, when free and in range', async () => {
    assert.equal(await pickAddress(memoryLeases([]), range, 'a', '10.0.0.11', '10.0.0.1', NOW), '10.0.0.11');
    assert.equal(await pickAddress(memoryLeases([]), range, 'a', '10.0.0.99', '10.0.0.1', NOW), '10.0.0.10');
  });
  test('else the first free one, never our own address, none when full', async () => {
    const held = memoryLeases([{ mac: 'x', address: '10.0.0.10', expiresAt: LATER }]);
    assert.equal(await pickAddress(held, range, 'a', undefined, '10.0.0.11', NOW), '10.0.0.12');
    const full = memoryLeases(['10.0.0.10', '10.0.0.11', '10.0.0.12'].map((address, i) => ({ mac: `m${i}`, address, expiresAt: LATER })));
    assert.equal(await pickAddress(full, range, 'a', undefined, '10.0.0.1', NOW), undefined);
  });
});
