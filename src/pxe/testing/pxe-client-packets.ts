import { DhcpMessageType, DhcpOption, encodeDhcpRequest } from '../dhcp-packet.ts';

/** A client's DHCP message as firmware would send it; for tests. */
export function clientPacket(p: {
  xid: number;
  type?: number;
  mac?: string;
  vendorClass?: string;
  arch?: number;
  userClass?: string;
  uuid?: Buffer;
  ciaddr?: string;
  serverId?: Buffer;
}): Buffer {
  const options: Array<[number, Buffer]> = [[DhcpOption.MESSAGE_TYPE, Buffer.from([p.type ?? DhcpMessageType.DISCOVER])]];
  if (p.vendorClass !== undefined) options.push([DhcpOption.VENDOR_CLASS, Buffer.from(p.vendorClass, 'latin1')]);
  if (p.arch !== undefined) options.push([DhcpOption.CLIENT_ARCH, Buffer.from([p.arch >> 8, p.arch & 0xff])]);
  if (p.userClass !== undefined) options.push([DhcpOption.USER_CLASS, Buffer.from(p.userClass, 'latin1')]);
  if (p.uuid !== undefined) options.push([DhcpOption.CLIENT_UUID, Buffer.concat([Buffer.from([0]), p.uuid])]);
  if (p.serverId !== undefined) options.push([DhcpOption.SERVER_ID, p.serverId]);
  const mac = Buffer.from((p.mac ?? '52:54:00:12:34:56').split(':').map((h) => parseInt(h, 16)));
  return encodeDhcpRequest({ xid: p.xid, chaddr: mac, ciaddr: p.ciaddr, flags: 0x8000, options });
}

/** Option 60 of x64 UEFI firmware PXE. */
export const UEFI_PXE_VENDOR = 'PXEClient:Arch:00007:UNDI:003016';
/** Option 60 of a legacy BIOS PXE ROM. */
export const BIOS_PXE_VENDOR = 'PXEClient:Arch:00000:UNDI:002001';
/** Option 60 of UEFI HTTP boot. */
export const UEFI_HTTP_VENDOR = 'HTTPClient:Arch:00016:UNDI:003001';
