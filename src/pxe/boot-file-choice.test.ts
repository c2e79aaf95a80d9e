import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseBootFile, type BootFileChoice } from './boot-file-choice.ts';
import { parseDhcpPacket } from './dhcp-packet.ts';
import { BIOS_PXE_VENDOR, clientPacket, UEFI_HTTP_VENDOR, UEFI_PXE_VENDOR } from './testing/pxe-client-packets.ts';

const ALL = new Set(['undionly.kpxe', 'snponly.efi', 'ipxe.efi', 'snp.efi']);
const URL = 'http://10.0.0.5:8081';

describe('chooseBootFile', () => {
  const cases: Array<[string, { vendorClass?: string; arch?: number; userClass?: string }, Set<string>, BootFileChoice['kind'], string?]> = [
    ['no vendor class: ignored', { arch: 7 }, ALL, 'ignore'],
    ['BIOS: undionly.kpxe', { vendorClass: BIOS_PXE_VENDOR, arch: 0 }, ALL, 'tftp', 'undionly.kpxe'],
    ['BIOS without undionly.kpxe: ignored', { vendorClass: BIOS_PXE_VENDOR, arch: 0 }, new Set(['snponly.efi']), 'ignore'],
    ['x64 UEFI: snponly.efi first', { vendorClass: UEFI_PXE_VENDOR, arch: 7 }, ALL, 'tftp', 'snponly.efi'],
    ['x64 UEFI without snponly.efi: ipxe.efi', { vendorClass: UEFI_PXE_VENDOR, arch: 9 }, new Set(['ipxe.efi']), 'tftp', 'ipxe.efi'],
    ['arm64 UEFI: snp.efi', { vendorClass: 'PXEClient:Arch:00011', arch: 11 }, ALL, 'tftp', 'snp.efi'],
    ['iPXE: the boot script URL, whatever the architecture', { vendorClass: UEFI_PXE_VENDOR, arch: 7, userClass: 'iPXE' }, new Set(), 'url', `${URL}/boot.ipxe`],
    ['HTTP boot x64: ipxe.efi over HTTP', { vendorClass: UEFI_HTTP_VENDOR, arch: 16 }, ALL, 'url', `${URL}/ipxe/ipxe.efi`],
    ['HTTP boot without ipxe.efi: ignored', { vendorClass: UEFI_HTTP_VENDOR, arch: 16 }, new Set(['snponly.efi']), 'ignore'],
    ['PXE with the HTTP architecture but no HTTPClient: ignored', { vendorClass: 'PXEClient', arch: 16 }, ALL, 'ignore'],
    ['an unknown architecture: ignored', { vendorClass: 'PXEClient', arch: 2 }, ALL, 'ignore'],
  ];
  for (const [rule, client, available, kind, target] of cases) {
    test(rule, () => {
      const choice = chooseBootFile(parseDhcpPacket(clientPacket({ xid: 1, ...client })), { available, bootUrl: URL });
      assert.equal(choice.kind, kind, JSON.stringify(choice));
      if (choice.kind === 'tftp') assert.equal(choice.file, target);
      if (choice.kind === 'url') assert.equal(choice.url, target);
    });
  }
});
