import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { Logger } from '../core/logger.ts';
import { chooseBootFile, type BootFileChoice } from './boot-file-choice.ts';
import { leaseAnswer, type FullDhcpOptions, type LeaseGrant } from './full-dhcp.ts';
import {
  BOOTREQUEST,
  clientArchitecture,
  clientMac,
  DhcpMessageType,
  DhcpOption,
  DhcpPacketError,
  encodeDhcpReply,
  ipv4Bytes,
  messageType,
  parseDhcpPacket,
  vendorClass,
  type DhcpPacket,
} from './dhcp-packet.ts';

/** How the proxyDHCP runs. */
export interface ProxyDhcpOptions {
  /** The provisioning interface's IPv4 address: server identifier, TFTP server, source of every answer. e.g. `10.0.0.4` */
  serverAddress: string;
  /** The boot server, without a trailing slash. e.g. `http://10.0.0.5:8081` */
  bootUrl: string;
  /** The iPXE files available to offer (read at each decision, so files added later are seen). */
  availableFiles: () => ReadonlySet<string>;
  logger: Logger;
  /** Ports; tests use free ones. Default: DHCP server 67, PXE boot server 4011, client 68. */
  ports?: { dhcp: number; pxe: number; client: number };
  /** Where answers to clients without an address go (default the limited broadcast 255.255.255.255). */
  broadcastAddress?: string;
  /** Listen on 0.0.0.0 too, to hear broadcast DISCOVERs (default true; loopback tests turn it off). */
  hearBroadcasts?: boolean;
  /**
   * Full DHCP for networks without a DHCP server (METAL_DHCP_RANGE): every client gets an address
   * from the range, PXE clients their boot file with it. Unset: proxyDHCP only.
   */
  fullDhcp?: FullDhcpOptions;
}

/** Requests waiting for the lease store; more are dropped (clients retry), so a flood stays bounded. */
const MAX_PENDING_LEASE_REQUESTS = 64;

/** A running proxyDHCP. */
export interface ProxyDhcp {
  /** Ports actually bound. */
  ports: { dhcp: number; pxe: number };
  close(): Promise<void>;
}

/**
 * Starts a proxyDHCP (PXE specification 2.1, as dnsmasq's `dhcp-range=…,proxy`): it answers only PXE
 * and HTTP boot clients, never hands out an address, and tells each which iPXE binary to load (or,
 * to iPXE itself, the boot script URL). It listens on the DHCP port for DISCOVERs and on port 4011
 * for the requests firmware sends after its address is settled by the site's DHCP server.
 *
 * Answers leave from `serverAddress`, so their broadcasts go out of that interface only.
 */
export async function startProxyDhcp(options: ProxyDhcpOptions): Promise<ProxyDhcp> {
  const ports = options.ports ?? { dhcp: 67, pxe: 4011, client: 68 };
  const broadcast = options.broadcastAddress ?? '255.255.255.255';
  const logger = options.logger.child({ component: 'proxydhcp' });
  ipv4Bytes(options.serverAddress);

  // Bound to the interface address: sends (so broadcasts use that interface) and unicast requests.
  const onInterface = await bindUdp(options.serverAddress, ports.dhcp, 'METAL_PROXYDHCP_INTERFACE');
  onInterface.setBroadcast(true);
  // Bound to every address: the only way to hear broadcast DISCOVERs without a raw socket.
  const wildcard = options.hearBroadcasts === false ? undefined : await bindUdp('0.0.0.0', onInterface.address().port, 'METAL_PROXYDHCP_INTERFACE');
  const pxe = await bindUdp(options.serverAddress, ports.pxe, 'METAL_PROXYDHCP_INTERFACE');
  const sockets = [onInterface, pxe, ...(wildcard ? [wildcard] : [])];

  let pending = 0;
  let leaseQueue: Promise<void> = Promise.resolve();
  const answer = (msg: Buffer, rinfo: RemoteInfo, onPxePort: boolean) => {
    let packet: DhcpPacket;
    try {
      packet = parseDhcpPacket(msg);
    } catch (err) {
      if (!(err instanceof DhcpPacketError)) throw err;
      logger.debug({ from: `${rinfo.address}:${rinfo.port}`, reason: err.message }, 'proxydhcp: malformed packet dropped');
      return;
    }
    if (packet.op !== BOOTREQUEST) return;
    const choice = chooseBootFile(packet, { available: options.availableFiles(), bootUrl: options.bootUrl });
    const send = (type: number, lease: LeaseGrant | undefined) => {
      const mac = clientMac(packet);
      let out: Buffer;
      try {
        out = encodeDhcpReply(buildReply(packet, type, choice, options.serverAddress, lease));
      } catch (err) {
        if (!(err instanceof DhcpPacketError)) throw err;
        logger.warn({ mac, reason: err.message }, 'proxydhcp: answer could not be encoded');
        return;
      }
      const to = onPxePort ? { address: rinfo.address, port: rinfo.port } : destination(packet, broadcast, ports);
      (onPxePort ? pxe : onInterface).send(out, to.port, to.address, (err) => {
        if (err) logger.warn({ mac, err: err.message }, 'proxydhcp: answer not sent');
      });
      const boot = choice.kind === 'tftp' ? choice.file : choice.kind === 'url' ? choice.url : undefined;
      const answerName = type === DhcpMessageType.OFFER ? 'offer' : type === DhcpMessageType.ACK ? 'ack' : 'nak';
      logger.info(
        { mac, arch: clientArchitecture(packet), vendorClass: vendorClass(packet), answer: answerName, port: onPxePort ? ports.pxe : ports.dhcp, boot, address: lease?.address },
        `proxydhcp: ${answerName}${lease ? ` ${lease.address}` : ''}${boot ? ` ${choice.kind === 'tftp' ? 'TFTP ' : ''}${boot}` : ''} for ${mac ?? 'a client'}`,
      );
    };

    if (options.fullDhcp && !onPxePort) {
      if (pending >= MAX_PENDING_LEASE_REQUESTS) {
        logger.debug('proxydhcp: too many requests waiting for the lease store; dropped');
        return;
      }
      pending++;
      // One at a time, in arrival order: each decision sees the leases the one before it wrote.
      const full = options.fullDhcp;
      leaseQueue = leaseQueue
        .then(() => leaseAnswer(packet, full, options.serverAddress))
        .then((result) => {
          if (result) send(result.type, result.lease);
        })
        .catch((err: unknown) => logger.error({ err }, 'proxydhcp: lease store failed'))
        .finally(() => pending--);
      return;
    }

    const type = messageType(packet);
    const reply = replyType(type, packet, onPxePort, options.serverAddress);
    if (reply === undefined) return;
    if (choice.kind === 'ignore') {
      // A plain DHCP client is the site's business: say nothing, log nothing above debug.
      logger.debug({ mac: clientMac(packet), vendorClass: vendorClass(packet), reason: choice.reason }, 'proxydhcp: not answered');
      return;
    }
    send(reply, undefined);
  };
  onInterface.on('message', (msg, rinfo) => answer(msg, rinfo, false));
  wildcard?.on('message', (msg, rinfo) => answer(msg, rinfo, false));
  pxe.on('message', (msg, rinfo) => answer(msg, rinfo, true));
  for (const s of sockets) s.on('error', (err) => logger.error({ err }, 'proxydhcp: socket error'));

  logger.info({ serverAddress: options.serverAddress, ports: { dhcp: onInterface.address().port, pxe: pxe.address().port } }, 'proxydhcp: answering PXE clients');
  return {
    ports: { dhcp: onInterface.address().port, pxe: pxe.address().port },
    async close() {
      await leaseQueue;
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

/**
 * What a request gets: an OFFER for a DISCOVER on the DHCP port; an ACK for a REQUEST (or INFORM) on
 * port 4011, or on the DHCP port when it names us as its server. Nothing else is answered.
 */
function replyType(type: number | undefined, packet: DhcpPacket, onPxePort: boolean, serverAddress: string): number | undefined {
  if (onPxePort) return type === DhcpMessageType.REQUEST || type === DhcpMessageType.INFORM ? DhcpMessageType.ACK : undefined;
  if (type === DhcpMessageType.DISCOVER) return DhcpMessageType.OFFER;
  if (type === DhcpMessageType.REQUEST) {
    const server = packet.options.get(DhcpOption.SERVER_ID);
    if (server?.length === 4 && server.equals(ipv4Bytes(serverAddress))) return DhcpMessageType.ACK;
  }
  return undefined;
}

function buildReply(packet: DhcpPacket, type: number, choice: BootFileChoice, serverAddress: string, lease: LeaseGrant | undefined) {
  const bootFile = choice.kind === 'tftp' ? choice.file : choice.kind === 'url' ? choice.url : undefined;
  const options: Array<[number, Buffer]> = [
    [DhcpOption.MESSAGE_TYPE, Buffer.from([type])],
    [DhcpOption.SERVER_ID, ipv4Bytes(serverAddress)],
  ];
  if (type === DhcpMessageType.NAK) {
    return { xid: packet.xid, flags: packet.flags, chaddr: packet.chaddr, htype: packet.htype, hlen: packet.hlen, giaddr: packet.giaddr, options };
  }
  if (lease) {
    options.push([DhcpOption.SUBNET_MASK, ipv4Bytes(lease.netmask)]);
    if (lease.leaseSeconds > 0) options.push([DhcpOption.LEASE_TIME, uint32(lease.leaseSeconds)]);
  }
  if (choice.kind !== 'ignore') {
    options.push([DhcpOption.VENDOR_CLASS, Buffer.from(choice.vendorClass, 'latin1')]);
    const uuid = packet.options.get(DhcpOption.CLIENT_UUID);
    if (uuid && uuid.length === 17) options.push([DhcpOption.CLIENT_UUID, uuid]);
    // Legacy PXE ROMs: skip boot server discovery and load the file named here (PXE 2.1, tag 6 = 8).
    if (choice.kind === 'tftp' && choice.bios) options.push([DhcpOption.VENDOR_SPECIFIC, Buffer.from([6, 1, 8, 255])]);
    options.push([DhcpOption.BOOTFILE_NAME, Buffer.from(bootFile!, 'latin1')]);
  }
  return {
    xid: packet.xid,
    flags: packet.flags,
    chaddr: packet.chaddr,
    htype: packet.htype,
    hlen: packet.hlen,
    ciaddr: packet.ciaddr,
    // A proxy never gives an address; full DHCP gives the leased one.
    yiaddr: lease?.leaseSeconds === 0 ? '0.0.0.0' : (lease?.address ?? '0.0.0.0'),
    siaddr: bootFile ? serverAddress : '0.0.0.0',
    giaddr: packet.giaddr,
    sname: bootFile ? serverAddress : '',
    file: bootFile && bootFile.length < 128 ? bootFile : '',
    options,
  };
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** RFC 2131 4.1: through the relay, to the client's own address, or broadcast. */
function destination(packet: DhcpPacket, broadcast: string, ports: { dhcp: number; client: number }): { address: string; port: number } {
  if (packet.giaddr !== '0.0.0.0') return { address: packet.giaddr, port: ports.dhcp };
  if (packet.ciaddr !== '0.0.0.0') return { address: packet.ciaddr, port: ports.client };
  return { address: broadcast, port: ports.client };
}

async function bindUdp(host: string, port: number, key: string): Promise<Socket> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      socket.close();
      if (err.code === 'EACCES') reject(new Error(`${key}: not allowed to listen on ${host}:${port} (DHCP needs root or CAP_NET_BIND_SERVICE)`));
      else if (err.code === 'EADDRINUSE') reject(new Error(`${key}: ${host}:${port} is already in use (is another DHCP or proxyDHCP server running here?)`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new Error(`${key}: ${host} is not an address of this host`));
      else reject(err);
    };
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return socket;
}
