/** The addresses the full DHCP server hands out, and the lease store it keeps them in. */

/** Where leases are kept (the consumer's port; storage's DhcpLeaseStore is the real one). */
export interface LeaseStore {
  leaseOf(mac: string): Promise<{ address: string; expiresAt: string } | undefined>;
  heldAddresses(now: string): Promise<Set<string>>;
  /** False when another MAC holds the address. */
  claim(mac: string, address: string, expiresAt: string, now: string): Promise<boolean>;
  release(mac: string, address: string): Promise<void>;
}

/** An inclusive IPv4 range. e.g. `{ first: '10.0.0.100', last: '10.0.0.200' }` */
export interface AddressRange {
  first: string;
  last: string;
}

/** The most addresses one range may hold. */
export const MAX_RANGE_SIZE = 65536;

export function ipv4ToNumber(address: string): number | undefined {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `10.0.0.100-10.0.0.200`; a reason string when it is not a usable range. */
export function parseAddressRange(value: string): AddressRange | string {
  const m = /^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(value);
  if (!m) return 'expected first-last, e.g. 10.0.0.100-10.0.0.200';
  const first = ipv4ToNumber(m[1]!);
  const last = ipv4ToNumber(m[2]!);
  if (first === undefined || last === undefined) return 'both ends must be IPv4 addresses';
  if (first > last) return 'the first address is after the last';
  if (last - first + 1 > MAX_RANGE_SIZE) return `at most ${MAX_RANGE_SIZE} addresses`;
  return { first: m[1]!, last: m[2]! };
}

/** Whether the whole range lies in the subnet of `address`/`netmask`, excluding its network and broadcast addresses. */
export function rangeInSubnet(range: AddressRange, address: string, netmask: string): boolean {
  const mask = ipv4ToNumber(netmask)!;
  const network = (ipv4ToNumber(address)! & mask) >>> 0;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  const first = ipv4ToNumber(range.first)!;
  const last = ipv4ToNumber(range.last)!;
  return first > network && last < broadcast && ((first & mask) >>> 0) === network && ((last & mask) >>> 0) === network;
}

/** Whether `address` is in the range. */
export function inRange(range: AddressRange, address: string): boolean {
  const n = ipv4ToNumber(address);
  return n !== undefined && n >= ipv4ToNumber(range.first)! && n <= ipv4ToNumber(range.last)!;
}

/**
 * The address to offer a client: its own lease when still in the range, else the address it asks
 * for when free, else the first free one; undefined when the range is full. `reserved` (our own
 * address) is never offered.
 */
export async function pickAddress(
  leases: LeaseStore,
  range: AddressRange,
  mac: string,
  requested: string | undefined,
  reserved: string,
  now: string,
): Promise<string | undefined> {
  const own = await leases.leaseOf(mac);
  if (own && inRange(range, own.address) && own.address !== reserved) {
    // Still ours unless it expired and another MAC took it since.
    const held = await leases.heldAddresses(now);
    if (own.expiresAt > now || !held.has(own.address)) return own.address;
  }
  const held = await leases.heldAddresses(now);
  const free = (a: string) => a !== reserved && !held.has(a);
  if (requested !== undefined && inRange(range, requested) && free(requested)) return requested;
  for (let n = ipv4ToNumber(range.first)!; n <= ipv4ToNumber(range.last)!; n++) {
    const a = numberToIpv4(n);
    if (free(a)) return a;
  }
  return undefined;
}
