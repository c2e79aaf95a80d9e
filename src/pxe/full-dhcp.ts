import { inRange, pickAddress, type AddressRange, type LeaseStore } from './address-pool.ts';
import { clientMac, DhcpMessageType, DhcpOption, ipv4Bytes, messageType, type DhcpPacket } from './dhcp-packet.ts';

/** The address-giving part of a full DHCP server. */
export interface FullDhcpOptions {
  range: AddressRange;
  /** The subnet mask clients get (the interface's). e.g. `255.255.255.0` */
  netmask: string;
  /** How long a lease lasts. */
  leaseSeconds: number;
  leases: LeaseStore;
  /** The clock (tests may fix it). */
  now?: () => Date;
}

/** An address given with an answer (full DHCP only). */
export interface LeaseGrant {
  address: string;
  netmask: string;
  leaseSeconds: number;
}

/**
 * Full DHCP (RFC 2131) over the lease store: DISCOVER gets an OFFER of an address (not yet written);
 * REQUEST of an address this server may give is written and ACKed, else NAKed; a REQUEST naming
 * another server is left alone; RELEASE and DECLINE change the store; INFORM gets options only.
 */
export async function leaseAnswer(packet: DhcpPacket, full: FullDhcpOptions, serverAddress: string): Promise<{ type: number; lease?: LeaseGrant } | undefined> {
  const mac = clientMac(packet);
  // Only the directly attached network is served: a relayed request comes from another subnet.
  if (!mac || packet.giaddr !== '0.0.0.0') return undefined;
  const now = (full.now ?? (() => new Date()))();
  const nowIso = now.toISOString();
  const expires = new Date(now.getTime() + full.leaseSeconds * 1000).toISOString();
  const grant = (address: string): LeaseGrant => ({ address, netmask: full.netmask, leaseSeconds: full.leaseSeconds });
  const requestedOption = packet.options.get(DhcpOption.REQUESTED_ADDRESS);
  const requested = requestedOption?.length === 4 ? [...requestedOption].join('.') : undefined;
  const serverId = packet.options.get(DhcpOption.SERVER_ID);
  const forUs = serverId === undefined || (serverId.length === 4 && serverId.equals(ipv4Bytes(serverAddress)));

  switch (messageType(packet)) {
    case DhcpMessageType.DISCOVER: {
      const address = await pickAddress(full.leases, full.range, mac, requested, serverAddress, nowIso);
      return address === undefined ? undefined : { type: DhcpMessageType.OFFER, lease: grant(address) };
    }
    case DhcpMessageType.REQUEST: {
      if (!forUs) return undefined;
      const address = requested ?? (packet.ciaddr !== '0.0.0.0' ? packet.ciaddr : undefined);
      if (address === undefined || !inRange(full.range, address) || address === serverAddress) return { type: DhcpMessageType.NAK };
      return (await full.leases.claim(mac, address, expires, nowIso)) ? { type: DhcpMessageType.ACK, lease: grant(address) } : { type: DhcpMessageType.NAK };
    }
    case DhcpMessageType.RELEASE:
      if (forUs && packet.ciaddr !== '0.0.0.0') await full.leases.release(mac, packet.ciaddr);
      return undefined;
    case DhcpMessageType.DECLINE:
      // The client found the address in use: keep it out of the pool for one lease time.
      if (forUs && requested !== undefined && inRange(full.range, requested)) {
        await full.leases.release(mac, requested);
        await full.leases.claim(`declined:${requested}`, requested, expires, nowIso);
      }
      return undefined;
    case DhcpMessageType.INFORM:
      return { type: DhcpMessageType.ACK, lease: { ...grant(packet.ciaddr), leaseSeconds: 0 } };
    default:
      return undefined;
  }
}
