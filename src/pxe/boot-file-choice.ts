import { clientArchitecture, userClasses, vendorClass, type DhcpPacket } from './dhcp-packet.ts';

/** Client system architectures of option 93 (RFC 4578 and the IANA registry) that we boot. */
export const ClientArch = {
  BIOS: 0,
  EFI_IA32: 6,
  EFI_X64: 7,
  /** Often sent by x64 UEFI firmware too (the registry calls it EFI BC). */
  EFI_BC: 9,
  EFI_ARM64: 11,
  EFI_X64_HTTP: 16,
} as const;

/** What a proxyDHCP answers one client with. */
export type BootFileChoice =
  /** Not ours to answer: no PXE/HTTP vendor class, or nothing to offer its architecture. */
  | { kind: 'ignore'; reason: string }
  /** Firmware PXE: load this iPXE binary over TFTP. `bios` adds the PXE discovery-control option. */
  | { kind: 'tftp'; file: string; vendorClass: 'PXEClient'; bios: boolean }
  /** iPXE or UEFI HTTP boot: fetch this URL. */
  | { kind: 'url'; url: string; vendorClass: 'PXEClient' | 'HTTPClient' };

/** What the decision needs besides the packet. */
export interface BootFileChoiceOptions {
  /** Files present in the iPXE directory, e.g. `undionly.kpxe`, `snponly.efi`. */
  available: ReadonlySet<string>;
  /** The boot server, without a trailing slash. e.g. `http://10.0.0.5:8081` */
  bootUrl: string;
}

/** Names the iPXE binaries each firmware gets, in order of preference. */
export const BIOS_FILES = ['undionly.kpxe'];
export const UEFI_X64_FILES = ['snponly.efi', 'ipxe.efi'];
export const UEFI_ARM64_FILES = ['snp.efi', 'snponly-arm64.efi'];
/** UEFI HTTP boot fetches this over HTTP from `/ipxe/`. */
export const HTTP_BOOT_FILE = 'ipxe.efi';

/**
 * The decision table of the proxyDHCP, as one function:
 *
 * | client | answer |
 * |---|---|
 * | no option 60 `PXEClient…` / `HTTPClient…` | ignore (never answer a plain DHCP client) |
 * | user class `iPXE` | URL `<boot url>/boot.ipxe` |
 * | `HTTPClient`, arch 16 | URL `<boot url>/ipxe/ipxe.efi`, vendor class `HTTPClient` |
 * | arch 0 (BIOS) | TFTP `undionly.kpxe` |
 * | arch 7 or 9 (x64 UEFI) | TFTP `snponly.efi`, else `ipxe.efi` |
 * | arch 11 (arm64 UEFI) | TFTP `snp.efi` when present |
 * | anything else, or its file missing | ignore |
 */
export function chooseBootFile(packet: DhcpPacket, options: BootFileChoiceOptions): BootFileChoice {
  const vendor = vendorClass(packet) ?? '';
  const isPxe = vendor.startsWith('PXEClient');
  const isHttp = vendor.startsWith('HTTPClient');
  if (!isPxe && !isHttp) return { kind: 'ignore', reason: 'not a PXE or HTTP boot client (option 60)' };
  if (userClasses(packet).includes('iPXE')) return { kind: 'url', url: `${options.bootUrl}/boot.ipxe`, vendorClass: 'PXEClient' };

  const arch = clientArchitecture(packet);
  if (arch === undefined) return { kind: 'ignore', reason: 'no client architecture (option 93)' };
  if (isHttp) {
    if (arch !== ClientArch.EFI_X64_HTTP) return { kind: 'ignore', reason: `no HTTP boot file for architecture ${arch}` };
    if (!options.available.has(HTTP_BOOT_FILE)) return { kind: 'ignore', reason: `${HTTP_BOOT_FILE} is not in the iPXE directory` };
    return { kind: 'url', url: `${options.bootUrl}/ipxe/${HTTP_BOOT_FILE}`, vendorClass: 'HTTPClient' };
  }
  const candidates =
    arch === ClientArch.BIOS
      ? BIOS_FILES
      : arch === ClientArch.EFI_X64 || arch === ClientArch.EFI_BC
        ? UEFI_X64_FILES
        : arch === ClientArch.EFI_ARM64
          ? UEFI_ARM64_FILES
          : [];
  if (candidates.length === 0) return { kind: 'ignore', reason: `no boot file for architecture ${arch}` };
  const file = candidates.find((f) => options.available.has(f));
  if (!file) return { kind: 'ignore', reason: `none of ${candidates.join(', ')} is in the iPXE directory` };
  return { kind: 'tftp', file, vendorClass: 'PXEClient', bios: arch === ClientArch.BIOS };
}
