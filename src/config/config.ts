import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { parseAddressRange, type AddressRange } from '../pxe/address-pool.ts';
import { BOOT_CHECK_MODES, type BootCheckMode } from '../builder/boot-check/boot-check.ts';
import { checkSecureBootKeys, type SecureBootKeys } from '../images/secure-boot.ts';

/** The whole configuration of a `metal` process, validated once at start-up and frozen. */
export interface Config {
  /** State directory: SQLite file, images, generated secrets. e.g. `./data` */
  dataDir: string;
  /** `sqlite:<path>` or `postgres://user@host:5432/db` */
  databaseUrl: string;
  /** REST API and dashboard listener. */
  listen: Listen;
  /** Boot server listener. */
  bootListen: Listen;
  /** How machines reach the boot server, without a trailing slash. e.g. `http://10.0.0.5:8081` */
  bootUrl: string;
  /** Image storage. e.g. `./data/images` */
  imagesDir: string;
  /** Password of the first admin; a secret, never logged. */
  adminPassword: string | undefined;
  /** Nix expression the builder builds. */
  nixEntry: string;
  /** Seconds a build may run before it fails. */
  buildTimeoutSeconds: number;
  /** Builds one builder runs at once. */
  buildConcurrency: number;
  /** Successful builds whose images are kept per machine (besides any a machine boots or a rollout needs). */
  keepBuilds: number;
  /** How long a builder's claim on a build holds without renewal, in ms (it renews at a third of it). */
  buildLeaseMs: number;
  /**
   * Lets a builder without a Nix daemon run nix-build without a sandbox (METAL_BUILD_UNSANDBOXED=1):
   * the configuration's derivations then run as this user with access to this host.
   */
  buildUnsandboxed: boolean;
  /**
   * METAL_BUILD_BOOT_CHECK: `off`; `booted`, each image is booted in a VM (QEMU) and published only
   * once it reports that it came up; `healthy`, and its profile's health check passed there too.
   */
  buildBootCheck: BootCheckMode;
  /** How long the boot check waits for the image's report, in ms. */
  buildBootCheckTimeoutMs: number;
  /**
   * UEFI Secure Boot (METAL_SECURE_BOOT_KEY, METAL_SECURE_BOOT_CERT): kernels and iPXE EFI binaries
   * are signed with this key; undefined: nothing is signed.
   */
  secureBoot: SecureBootKeys | undefined;
  /** Enrollments accepted per minute from one source address; 0 means no limit. */
  enrollRate: number;
  /** Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges). */
  trustProxy: string[];
  /** When set, `/api/v1/enroll` requires it; the boot server puts it on the registration kernel line. */
  enrollToken: string | undefined;
  /** Hex or base64 key (32 bytes) encrypting sensitive columns; generated into the data dir when unset. */
  secretKey: string | undefined;
  /** BMC calls (IPMI or Redfish) in flight at once across all machines. */
  powerConcurrency: number;
  /** How long a client may take to send a whole request (headers and body), in ms. */
  requestTimeoutMs: number;
  /** pxe role: interface the proxyDHCP answers on; unset, no proxyDHCP runs. e.g. `eth1` */
  proxyDhcpInterface: string | undefined;
  /** pxe role: full DHCP hands out this range on the proxyDHCP interface; unset, proxyDHCP only. */
  dhcpRange: AddressRange | undefined;
  /** pxe role: TFTP listener. */
  tftpListen: Listen;
  /** iPXE binaries served over TFTP and at `/ipxe/` on the boot listener. e.g. `/usr/lib/ipxe` */
  ipxeDir: string;
  /** A separate listener for `GET /metrics` (METAL_METRICS_LISTEN); unset: on the API listener. */
  metricsListen: Listen | undefined;
  /** When set, `GET /metrics` requires `Authorization: Bearer <token>` (METAL_METRICS_TOKEN). */
  metricsToken: string | undefined;
  /** Webhook URLs may point at loopback addresses (METAL_WEBHOOK_ALLOW_LOOPBACK=1); link-local and metadata never. */
  webhookAllowLoopback: boolean;
  /** Limit for one BMC call (an ipmitool run, a Redfish request), in ms. */
  powerCallTimeoutMs: number;
  /** How often the api role reads every BMC's power state, in ms; 0 turns the poller off. */
  powerPollIntervalMs: number;
  /** pino level. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `auto` (readable lines on a terminal, JSON lines otherwise), `json` or `pretty`. */
  logFormat: 'auto' | 'json' | 'pretty';
  /** The nixpkgs images are built from; undefined: `<nixpkgs>` from the host's NIX_PATH. */
  nixpkgs: NixpkgsSource | undefined;
  /** Kernel consoles of every image, the last one is /dev/console. e.g. `['tty0', 'ttyS0,115200']` */
  consoles: string[];
  /** What a machine does once enrolled (`metal.after=` on the registration kernel line). */
  afterEnroll: AfterEnroll;
}

/** METAL_NIXPKGS: a nixpkgs tree on this host, or a tarball pinned by its hash. */
export type NixpkgsSource = { kind: 'path'; path: string } | { kind: 'tarball'; url: string; sha256: string };

/** METAL_AFTER_ENROLL: reboot (into the hold script, then its image), poweroff, or hold (stay on). */
export type AfterEnroll = 'reboot' | 'poweroff' | 'hold';
export const AFTER_ENROLL_VALUES = ['reboot', 'poweroff', 'hold'] as const;

/** Default METAL_CONSOLE: VGA, and the two serial ports vendors use for serial-over-LAN. */
export const DEFAULT_CONSOLE = 'tty0 ttyS0,115200 ttyS1,115200';

export interface Listen {
  host: string;
  port: number;
}

/** A configuration value that cannot be used; the message names the key and the value. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly value: string,
    reason: string,
  ) {
    super(`config: ${key}=${JSON.stringify(value)} is invalid: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** The keys `metal` reads; each also accepted as a kebab-case flag (`--data-dir`). */
export const CONFIG_KEYS = [
  'METAL_DATA_DIR',
  'METAL_DATABASE_URL',
  'METAL_LISTEN',
  'METAL_BOOT_LISTEN',
  'METAL_BOOT_URL',
  'METAL_IMAGES_DIR',
  'METAL_ADMIN_PASSWORD',
  'METAL_NIX_ENTRY',
  'METAL_BUILD_TIMEOUT',
  'METAL_BUILD_CONCURRENCY',
  'METAL_KEEP_BUILDS',
  'METAL_BUILD_LEASE_SECONDS',
  'METAL_BUILD_UNSANDBOXED',
  'METAL_BUILD_BOOT_CHECK',
  'METAL_BUILD_BOOT_CHECK_TIMEOUT',
  'METAL_SECURE_BOOT_KEY',
  'METAL_SECURE_BOOT_CERT',
  'METAL_ENROLL_RATE',
  'METAL_TRUST_PROXY',
  'METAL_ENROLL_TOKEN',
  'METAL_SECRET_KEY',
  'METAL_LOG_LEVEL',
  'METAL_LOG_FORMAT',
  'METAL_POWER_CONCURRENCY',
  'METAL_NIXPKGS',
  'METAL_CONSOLE',
  'METAL_AFTER_ENROLL',
  'METAL_REQUEST_TIMEOUT_SECONDS',
  'METAL_PROXYDHCP_INTERFACE',
  'METAL_DHCP_RANGE',
  'METAL_TFTP_LISTEN',
  'METAL_IPXE_DIR',
  'METAL_METRICS_LISTEN',
  'METAL_METRICS_TOKEN',
  'METAL_WEBHOOK_ALLOW_LOOPBACK',
  'METAL_POWER_TIMEOUT',
  'METAL_POWER_POLL_INTERVAL',
] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** `METAL_BOOT_URL` -> `boot-url`: the flag name of a key. */
export function flagName(key: ConfigKey): string {
  return key.replace(/^METAL_/, '').toLowerCase().replaceAll('_', '-');
}

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Builds the configuration from environment variables, overridden by flags (keyed by env name).
 * Throws ConfigError on the first invalid value.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  flags: Partial<Record<ConfigKey, string>> = {},
): Readonly<Config> {
  const raw = (key: ConfigKey): string | undefined => {
    const v = flags[key] ?? env[key];
    return v === undefined || v === '' ? undefined : v;
  };

  const dataDir = resolve(raw('METAL_DATA_DIR') ?? './data');
  const bootListen = parseListen('METAL_BOOT_LISTEN', raw('METAL_BOOT_LISTEN') ?? '0.0.0.0:8081');
  const config: Config = {
    dataDir,
    databaseUrl: parseDatabaseUrl(raw('METAL_DATABASE_URL'), dataDir),
    listen: parseListen('METAL_LISTEN', raw('METAL_LISTEN') ?? '0.0.0.0:8080'),
    bootListen,
    bootUrl: parseBootUrl(raw('METAL_BOOT_URL'), bootListen),
    imagesDir: resolve(raw('METAL_IMAGES_DIR') ?? `${dataDir}/images`),
    adminPassword: raw('METAL_ADMIN_PASSWORD'),
    nixEntry: parseNixEntry(raw('METAL_NIX_ENTRY')),
    buildTimeoutSeconds: parseInteger('METAL_BUILD_TIMEOUT', raw('METAL_BUILD_TIMEOUT') ?? '3600', 1, 7 * 86400),
    buildConcurrency: parseInteger('METAL_BUILD_CONCURRENCY', raw('METAL_BUILD_CONCURRENCY') ?? '1', 1, 64),
    keepBuilds: parseInteger('METAL_KEEP_BUILDS', raw('METAL_KEEP_BUILDS') ?? '3', 1, 1000),
    buildLeaseMs: parseSeconds('METAL_BUILD_LEASE_SECONDS', raw('METAL_BUILD_LEASE_SECONDS') ?? '30', 0.2, 3600),
    buildUnsandboxed: parseFlag('METAL_BUILD_UNSANDBOXED', raw('METAL_BUILD_UNSANDBOXED') ?? '0'),
    buildBootCheck: parseEnum('METAL_BUILD_BOOT_CHECK', raw('METAL_BUILD_BOOT_CHECK') ?? 'off', BOOT_CHECK_MODES),
    secureBoot: parseSecureBoot(raw('METAL_SECURE_BOOT_KEY'), raw('METAL_SECURE_BOOT_CERT')),
    buildBootCheckTimeoutMs: parseSeconds('METAL_BUILD_BOOT_CHECK_TIMEOUT', raw('METAL_BUILD_BOOT_CHECK_TIMEOUT') ?? '600', 5, 86400),
    enrollRate: parseInteger('METAL_ENROLL_RATE', raw('METAL_ENROLL_RATE') ?? '60', 0, 1_000_000),
    trustProxy: parseTrustProxy(raw('METAL_TRUST_PROXY')),
    enrollToken: parseEnrollToken(raw('METAL_ENROLL_TOKEN')),
    secretKey: raw('METAL_SECRET_KEY'),
    powerConcurrency: parseInteger('METAL_POWER_CONCURRENCY', raw('METAL_POWER_CONCURRENCY') ?? '16', 1, 256),
    requestTimeoutMs: parseSeconds('METAL_REQUEST_TIMEOUT_SECONDS', raw('METAL_REQUEST_TIMEOUT_SECONDS') ?? '30', 0.2, 3600),
    metricsListen: optional(raw('METAL_METRICS_LISTEN'), (v) => parseListen('METAL_METRICS_LISTEN', v)),
    metricsToken: optional(raw('METAL_METRICS_TOKEN'), parseMetricsToken),
    webhookAllowLoopback: parseEnum('METAL_WEBHOOK_ALLOW_LOOPBACK', raw('METAL_WEBHOOK_ALLOW_LOOPBACK') ?? '0', ['0', '1'] as const) === '1',
    powerCallTimeoutMs: parseSeconds('METAL_POWER_TIMEOUT', raw('METAL_POWER_TIMEOUT') ?? '10', 0.1, 300),
    powerPollIntervalMs: parsePollInterval(raw('METAL_POWER_POLL_INTERVAL') ?? '300'),
    logLevel: parseEnum('METAL_LOG_LEVEL', raw('METAL_LOG_LEVEL') ?? 'info', LOG_LEVELS),
    logFormat: parseEnum('METAL_LOG_FORMAT', raw('METAL_LOG_FORMAT') ?? 'auto', ['auto', 'json', 'pretty'] as const),
    nixpkgs: parseNixpkgs(raw('METAL_NIXPKGS')),
    consoles: parseConsoles(raw('METAL_CONSOLE') ?? DEFAULT_CONSOLE),
    afterEnroll: parseEnum('METAL_AFTER_ENROLL', raw('METAL_AFTER_ENROLL') ?? 'reboot', AFTER_ENROLL_VALUES),
    proxyDhcpInterface: parseInterfaceName('METAL_PROXYDHCP_INTERFACE', raw('METAL_PROXYDHCP_INTERFACE')),
    dhcpRange: parseDhcpRange(raw('METAL_DHCP_RANGE')),
    tftpListen: parseListen('METAL_TFTP_LISTEN', raw('METAL_TFTP_LISTEN') ?? '0.0.0.0:69'),
    ipxeDir: resolve(raw('METAL_IPXE_DIR') ?? '/usr/lib/ipxe'),
  };
  return Object.freeze(config);
}

/** Both or neither; each readable, the key unencrypted and the certificate its own. */
function parseSecureBoot(key: string | undefined, cert: string | undefined): SecureBootKeys | undefined {
  if (key === undefined && cert === undefined) return undefined;
  if (key === undefined) throw new ConfigError('METAL_SECURE_BOOT_KEY', '', 'METAL_SECURE_BOOT_CERT is set; set its private key too (both or neither)');
  if (cert === undefined) throw new ConfigError('METAL_SECURE_BOOT_CERT', '', 'METAL_SECURE_BOOT_KEY is set; set its certificate too (both or neither)');
  const keys = { key: resolve(key), cert: resolve(cert) };
  const wrong = checkSecureBootKeys(keys);
  if (wrong) throw new ConfigError(wrong.setting, wrong.setting === 'METAL_SECURE_BOOT_KEY' ? key : cert, wrong.reason);
  return keys;
}

function parseInteger(key: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(key, value, 'expected a whole number');
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(key, value, `expected a number from ${min} to ${max}`);
  return n;
}

/** Seconds between power polls (0: off, else 10 to 86400), as milliseconds. */
function parsePollInterval(value: string): number {
  return value === '0' ? 0 : parseSeconds('METAL_POWER_POLL_INTERVAL', value, 10, 86400);
}

/** Seconds, fractions allowed, as milliseconds. */
function parseSeconds(key: string, value: string, min: number, max: number): number {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new ConfigError(key, value, `expected seconds from ${min} to ${max}`);
  return Math.round(n * 1000);
}

/** `1`/`true`/`yes` or `0`/`false`/`no`. */
function parseFlag(key: string, value: string): boolean {
  if (/^(1|true|yes)$/i.test(value)) return true;
  if (/^(0|false|no)$/i.test(value)) return false;
  throw new ConfigError(key, value, 'expected 1 or 0 (true or false)');
}

function parseEnum<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(key, value, `expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** `host:port`, `:port` or `[v6]:port`. */
export function parseListen(key: string, value: string): Listen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError(key, value, 'expected host:port, e.g. 0.0.0.0:8080');
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(key, value, 'port must be at most 65535');
  const host = m[1] ?? (m[2] || '0.0.0.0');
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new ConfigError(key, value, 'invalid host');
  return { host, port };
}

function parseDatabaseUrl(value: string | undefined, dataDir: string): string {
  if (value === undefined) return `sqlite:${dataDir}/metal.db`;
  if (/^postgres(ql)?:\/\//.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new ConfigError('METAL_DATABASE_URL', redactUrl(value), 'not a valid URL');
    }
    return value;
  }
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length);
    if (path === '') throw new ConfigError('METAL_DATABASE_URL', value, 'sqlite: needs a file path');
    return path === ':memory:' ? value : `sqlite:${resolve(path)}`;
  }
  throw new ConfigError(
    'METAL_DATABASE_URL',
    redactUrl(value),
    'expected postgres://user@host:5432/db or sqlite:<path>',
  );
}

/** Hides a password in a database URL, for messages and logs. */
export function redactUrl(value: string): string {
  // The password of the user part, and query parameters that carry one (PostgreSQL also takes
  // `?password=` and `?sslpassword=`), are hidden; the rest stays, so the message still says where.
  return value
    .replace(/(\/\/[^:/@]+:)[^/]*@/, '$1***@')
    .replace(/([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*/gi, '$1***');
}

function parseBootUrl(value: string | undefined, bootListen: Listen): string {
  if (value === undefined) {
    const host = bootListen.host === '0.0.0.0' || bootListen.host === '::' ? firstLanAddress() : bootListen.host;
    const shown = host.includes(':') ? `[${host}]` : host;
    return `http://${shown}:${bootListen.port}`;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('METAL_BOOT_URL', value, 'not a valid URL, e.g. http://10.0.0.5:8081');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('METAL_BOOT_URL', value, 'must be http:// or https://');
  }
  if (url.search || url.hash || url.username) {
    throw new ConfigError('METAL_BOOT_URL', value, 'must not carry a query, fragment or credentials');
  }
  // The URL is written into iPXE scripts: only characters that need no quoting there.
  if (!/^[A-Za-z0-9:/._~%[\]-]+$/.test(value)) {
    throw new ConfigError('METAL_BOOT_URL', value, 'contains characters that are unsafe in an iPXE script');
  }
  return value.replace(/\/+$/, '');
}

/** The host's first non-loopback IPv4 address, or 127.0.0.1 when there is none. */
function firstLanAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address;
    }
  }
  return '127.0.0.1';
}

function parseNixEntry(value: string | undefined): string {
  if (value === undefined) return resolve(PROJECT_ROOT, 'nix/netboot.nix');
  if (value.startsWith('-')) throw new ConfigError('METAL_NIX_ENTRY', value, 'must be a path, not an option');
  return isAbsolute(value) ? value : resolve(value);
}

function parseTrustProxy(value: string | undefined): string[] {
  if (value === undefined) return [];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(item)) {
      throw new ConfigError('METAL_TRUST_PROXY', value, `"${item}" is not an address or CIDR range`);
    }
  }
  return items;
}

function optional<T>(value: string | undefined, parse: (v: string) => T): T | undefined {
  return value === undefined ? undefined : parse(value);
}

function parseMetricsToken(value: string): string {
  // Sent as a bearer token by Prometheus (`authorization: credentials_file`).
  if (!/^[A-Za-z0-9._~+/=-]{16,256}$/.test(value)) {
    throw new ConfigError('METAL_METRICS_TOKEN', '(hidden)', 'expected 16 to 256 characters of A-Z a-z 0-9 . _ ~ + / = -');
  }
  return value;
}

function parseEnrollToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  // It goes on a kernel command line: no spaces or quotes.
  if (!/^[A-Za-z0-9._~-]{16,128}$/.test(value)) {
    throw new ConfigError('METAL_ENROLL_TOKEN', '(hidden)', 'expected 16 to 128 characters of A-Z a-z 0-9 . _ ~ -');
  }
  return value;
}

/** Nix's sha256 forms: base32 (52 characters), hex (64) or SRI (`sha256-…=`). */
const NIX_SHA256 = /^(?:[0-9abcdfghijklmnpqrsvwxyz]{52}|[0-9a-f]{64}|sha256-[A-Za-z0-9+/]{43}=)$/;

/** A directory holding nixpkgs, or `https://…/nixpkgs.tar.gz#sha256=<hash>` (also `file://`). */
function parseNixpkgs(value: string | undefined): NixpkgsSource | undefined {
  if (value === undefined) return undefined;
  if (/^[a-z]+:\/\//.test(value)) {
    const m = /^((?:https?|file):\/\/[^\s#"'\\]+)#sha256=([^\s]+)$/.exec(value);
    if (!m) throw new ConfigError('METAL_NIXPKGS', value, 'expected a path, or a tarball URL with its hash: https://…/nixpkgs.tar.gz#sha256=<hash>');
    if (!NIX_SHA256.test(m[2]!)) throw new ConfigError('METAL_NIXPKGS', value, 'the sha256 must be in base32 (52 characters), hex (64) or SRI (sha256-…=) form');
    return { kind: 'tarball', url: m[1]!, sha256: m[2]! };
  }
  // eslint-disable-next-line no-control-regex
  if (value.startsWith('-') || /[\u0000-\u001f]/.test(value)) throw new ConfigError('METAL_NIXPKGS', value, 'must be a path or a URL');
  const path = resolve(value);
  if (!existsSync(resolve(path, 'nixos/lib/eval-config.nix'))) {
    throw new ConfigError('METAL_NIXPKGS', value, `not a nixpkgs tree: ${path}/nixos/lib/eval-config.nix does not exist`);
  }
  return { kind: 'path', path };
}

/** Space-separated kernel consoles, each `name[,options]`, e.g. `tty0 ttyS1,115200n8`. */
function parseConsoles(value: string): string[] {
  const items = value.trim().split(/\s+/).filter(Boolean);
  if (items.length === 0 || items.length > 8) throw new ConfigError('METAL_CONSOLE', value, 'expected 1 to 8 consoles, e.g. tty0 ttyS0,115200');
  for (const item of items) {
    if (!/^[a-zA-Z][a-zA-Z0-9]{0,15}(,[0-9]{3,7}[noe]?[5-8]?r?)?$/.test(item)) {
      throw new ConfigError('METAL_CONSOLE', value, `"${item}" is not a kernel console (name[,speed], e.g. ttyS1,115200)`);
    }
  }
  return items;
}

/** A Linux interface name: at most 15 characters, no slashes or spaces. */
function parseInterfaceName(key: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(value)) throw new ConfigError(key, value, 'expected a network interface name, e.g. eth1');
  return value;
}

function parseDhcpRange(value: string | undefined): AddressRange | undefined {
  if (value === undefined) return undefined;
  const range = parseAddressRange(value);
  if (typeof range === 'string') throw new ConfigError('METAL_DHCP_RANGE', value, range);
  return range;
}
