import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** Link-local and cloud metadata addresses: never a webhook target. */
const ALWAYS_REFUSED = new BlockList();
ALWAYS_REFUSED.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, AWS/GCP/Azure/OpenStack metadata 169.254.169.254
ALWAYS_REFUSED.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_REFUSED.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud metadata
ALWAYS_REFUSED.addSubnet('fe80::', 10, 'ipv6'); // link-local
ALWAYS_REFUSED.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6
ALWAYS_REFUSED.addAddress('::', 'ipv6');

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Names of metadata services, refused before any lookup. */
const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

/** Why an address may not be called, or undefined when it may. */
export function refusedAddress(address: string, allowLoopback: boolean): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  if (ALWAYS_REFUSED.check(ip, family)) return `${address} is a link-local or cloud metadata address`;
  if (!allowLoopback && LOOPBACK.check(ip, family)) return `${address} is a loopback address (allowed only with METAL_WEBHOOK_ALLOW_LOOPBACK=1)`;
  return undefined;
}

/**
 * Checks a webhook URL as given: http(s), no credentials, and a host that is not (literally) a
 * refused address or a metadata name. Returns the reason it is refused, or undefined.
 */
export function refusedUrl(value: string, allowLoopback: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'url is not a valid URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'url must be http:// or https://';
  if (url.username || url.password) return 'url must not carry credentials; sign deliveries with the secret instead';
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (METADATA_NAMES.has(host)) return `${host} is a cloud metadata service`;
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return allowLoopback ? undefined : `${host} is a loopback address (allowed only with METAL_WEBHOOK_ALLOW_LOOPBACK=1)`;
  }
  if (isIP(host)) return refusedAddress(host, allowLoopback);
  return undefined;
}

/** Resolves the URL's host and refuses it when any of its addresses is refused (checked at each attempt). */
export async function checkResolvedUrl(value: string, allowLoopback: boolean): Promise<string | undefined> {
  const literal = refusedUrl(value, allowLoopback);
  if (literal) return literal;
  const host = new URL(value).hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return undefined;
  const addresses = await lookup(host, { all: true });
  for (const a of addresses) {
    const reason = refusedAddress(a.address, allowLoopback);
    if (reason) return `${host} resolves to ${reason}`;
  }
  return undefined;
}
