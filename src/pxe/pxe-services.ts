import { readdirSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../core/logger.ts';
import { rangeInSubnet, type AddressRange, type LeaseStore } from './address-pool.ts';
import { startProxyDhcp, type ProxyDhcp } from './proxy-dhcp.ts';
import { startTftpServer, type TftpServer } from './tftp-server.ts';

/** What the `pxe` role needs: a slice of the configuration and a logger. */
export interface PxeServicesOptions {
  /** The directory of iPXE binaries served over TFTP. e.g. `/usr/lib/ipxe` */
  ipxeDir: string;
  /** TFTP listener. e.g. `{ host: '0.0.0.0', port: 69 }` */
  tftpListen: { host: string; port: number };
  /** The provisioning interface; when unset, no proxyDHCP runs (the site's DHCP points machines here). e.g. `eth1` */
  proxyDhcpInterface: string | undefined;
  /** The boot server as machines reach it. e.g. `http://10.0.0.5:8081` */
  bootUrl: string;
  /** Full DHCP on the interface, for networks without a DHCP server. e.g. `{ first: '10.0.0.100', last: '10.0.0.200' }` */
  dhcpRange?: AddressRange;
  /** Where full DHCP keeps its leases (needed with `dhcpRange`). */
  leases?: LeaseStore;
  logger: Logger;
}

/** How long a full-DHCP lease lasts. */
export const DHCP_LEASE_SECONDS = 3600;

/** The running `pxe` role. */
export interface PxeServices {
  tftp: TftpServer;
  proxyDhcp?: ProxyDhcp;
  stop(): Promise<void>;
}

/** A start-up problem of the pxe role; the message names the config key. */
export class PxeStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PxeStartError';
  }
}

/**
 * Starts TFTP (always) and the proxyDHCP (when an interface is named, answering from that
 * interface's first IPv4 address). Fails with a message naming the config key when the iPXE
 * directory or the interface is unusable.
 */
export async function startPxeServices(options: PxeServicesOptions): Promise<PxeServices> {
  const logger = options.logger.child({ role: 'pxe' });
  try {
    if (!statSync(options.ipxeDir).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new PxeStartError(`METAL_IPXE_DIR: ${options.ipxeDir} is not a readable directory (${(err as Error).message}); install the Debian package ipxe or point METAL_IPXE_DIR at a directory of iPXE binaries`);
  }
  const iface = options.proxyDhcpInterface === undefined ? undefined : interfaceAddress(options.proxyDhcpInterface);
  const serverAddress = iface?.address;
  if (options.dhcpRange) {
    if (!iface) throw new PxeStartError('METAL_DHCP_RANGE: full DHCP needs METAL_PROXYDHCP_INTERFACE, the interface to serve it on');
    if (!rangeInSubnet(options.dhcpRange, iface.address, iface.netmask)) {
      throw new PxeStartError(`METAL_DHCP_RANGE: ${options.dhcpRange.first}-${options.dhcpRange.last} is not inside ${options.proxyDhcpInterface}'s subnet ${iface.address}/${iface.netmask}`);
    }
    if (!options.leases) throw new PxeStartError('METAL_DHCP_RANGE: no lease store was given');
  }
  const files = listFiles(options.ipxeDir);
  for (const needed of ['undionly.kpxe', 'snponly.efi']) {
    if (!files.has(needed)) logger.warn({ dir: options.ipxeDir }, `pxe: ${needed} is not in ${options.ipxeDir}; machines needing it will not be answered`);
  }

  const tftp = await startTftpServer({ root: options.ipxeDir, listen: options.tftpListen, logger });
  let proxyDhcp: ProxyDhcp | undefined;
  if (serverAddress !== undefined) {
    try {
      proxyDhcp = await startProxyDhcp({
        serverAddress,
        bootUrl: options.bootUrl,
        availableFiles: () => listFiles(options.ipxeDir),
        logger,
        fullDhcp: options.dhcpRange && options.leases ? { range: options.dhcpRange, netmask: iface!.netmask, leaseSeconds: DHCP_LEASE_SECONDS, leases: options.leases } : undefined,
      });
    } catch (err) {
      await tftp.close();
      throw err;
    }
  } else {
    logger.info('pxe: no METAL_PROXYDHCP_INTERFACE; TFTP only (the site DHCP server names the boot file)');
  }
  return {
    tftp,
    proxyDhcp,
    async stop() {
      await proxyDhcp?.close();
      await tftp.close();
    },
  };
}

/** The first IPv4 address of an interface and its mask; PxeStartError naming the key when there is none. */
export function interfaceAddress(name: string): { address: string; netmask: string } {
  const all = networkInterfaces();
  const addresses = all[name];
  if (!addresses) throw new PxeStartError(`METAL_PROXYDHCP_INTERFACE: no interface ${JSON.stringify(name)} on this host (have: ${Object.keys(all).join(', ')})`);
  const v4 = addresses.find((a) => a.family === 'IPv4');
  if (!v4) throw new PxeStartError(`METAL_PROXYDHCP_INTERFACE: interface ${name} has no IPv4 address`);
  return { address: v4.address, netmask: v4.netmask };
}

function listFiles(dir: string): Set<string> {
  try {
    return new Set(readdirSync(dir));
  } catch {
    return new Set();
  }
}
