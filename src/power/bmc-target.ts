import { inspect } from 'node:util';
import { InvalidInputError } from '../core/errors.ts';

/** The BMC protocols the engine speaks. */
export const BMC_TYPES = ['ipmi', 'redfish'] as const;
export type BmcType = (typeof BMC_TYPES)[number];

/** The port each protocol uses when the address names none. */
export const DEFAULT_BMC_PORTS: Record<BmcType, number> = { ipmi: 623, redfish: 443 };

/** A BMC's network address. */
export interface BmcAddress {
  /** e.g. `10.0.0.21`, `bmc-r740-01.example.net`, `fd00::21` (no brackets) */
  host: string;
  port: number;
}

/**
 * A password that stays out of logs, JSON and `util.inspect`: only `reveal()` gives it, and only the
 * drivers call it, to hand it to ipmitool's environment or a Redfish login.
 */
export class BmcPassword {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[hidden]';
  }

  toString(): string {
    return '[hidden]';
  }

  [inspect.custom](): string {
    return 'BmcPassword([hidden])';
  }
}

/** How a Redfish client decides to trust the BMC's certificate. */
export interface RedfishTls {
  /** When false, any certificate is accepted (self-signed lab BMCs). Default true. */
  verify: boolean;
  /** PEM CA bundle the certificate must chain to (host name checked too). */
  caBundle?: string;
  /** SHA-256 fingerprint the certificate must have, e.g. `AB:CD:…` (64 hex digits, colons optional). */
  fingerprint?: string;
}

export interface IpmiTarget {
  type: 'ipmi';
  address: BmcAddress;
  username: string;
  password: BmcPassword;
}

export interface RedfishTarget {
  type: 'redfish';
  address: BmcAddress;
  username: string;
  password: BmcPassword;
  tls: RedfishTls;
  /** `session` (X-Auth-Token, the default) or HTTP `basic` on every request. */
  auth: 'session' | 'basic';
  /** The ComputerSystem's Id, e.g. `System.Embedded.1`; the first member of /redfish/v1/Systems when unset. */
  systemId?: string;
}

/** Everything needed to reach and log in to one machine's BMC. */
export type BmcTarget = IpmiTarget | RedfishTarget;

/** `ipmi 10.0.0.21:623`: for logs and messages. */
export function describeBmc(target: Pick<BmcTarget, 'type' | 'address'>): string {
  return `${target.type} ${describeAddress(target.address)}`;
}

/** `10.0.0.21:623`, `[fd00::21]:623`. */
export function describeAddress({ host, port }: BmcAddress): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Parses `host`, `host:port`, `[v6]` or `[v6]:port` (and for Redfish also `https://host[:port]` with no
 * path). Throws InvalidInputError naming what is wrong: a URL with a path, a query or credentials, another
 * scheme, a bad port or host.
 */
export function parseBmcAddress(value: string, type: BmcType): BmcAddress {
  const input = value.trim();
  const fail = (why: string): never => {
    throw new InvalidInputError(`bmc address ${JSON.stringify(value.slice(0, 100))} is invalid: ${why}`, { field: 'address' });
  };
  if (input === '') fail('it is empty');
  let rest = input;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(input);
  if (scheme) {
    if (type !== 'redfish' || scheme[1]!.toLowerCase() !== 'https') {
      fail(type === 'ipmi' ? 'an IPMI address is host[:port], not a URL' : 'only https:// is allowed for Redfish');
    }
    rest = input.slice(scheme[0].length);
    const end = rest.search(/[/?#]/);
    if (end >= 0) {
      if (rest.slice(end) !== '/') fail('a URL with a path, query or fragment; give host[:port] only');
      rest = rest.slice(0, end);
    }
    if (rest.includes('@')) fail('credentials do not belong in the address');
  } else if (/[/?#@\s]/.test(input)) {
    fail('expected host[:port], e.g. 10.0.0.21 or bmc-01.example.net:623');
  }

  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (!IPV6.test(host) || !host.includes(':')) fail('not an IPv6 address in brackets');
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    host = rest; // a bare IPv6 address, no port
    if (!IPV6.test(host)) fail('not an IPv6 address');
  } else {
    const colon = rest.indexOf(':');
    host = colon < 0 ? rest : rest.slice(0, colon);
    portText = colon < 0 ? undefined : rest.slice(colon + 1);
    if (!IPV4.test(host) && (!HOSTNAME.test(host) || /^[\d.]+$/.test(host))) fail('not a host name or IP address');
  }
  let port = DEFAULT_BMC_PORTS[type];
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) fail('the port must be 1 to 65535');
    port = Number(portText);
  }
  return { host: host.toLowerCase(), port };
}

/**
 * Normalises a SHA-256 certificate fingerprint to `AB:CD:…` (Node's `fingerprint256` form). Throws
 * InvalidInputError when it is not 32 bytes of hex.
 */
export function parseFingerprint(value: string): string {
  const hex = value.trim().replace(/^sha256[:=]/i, '').replaceAll(':', '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new InvalidInputError('bmc tls fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons optional', { field: 'fingerprint' });
  }
  return hex.match(/../g)!.join(':');
}
