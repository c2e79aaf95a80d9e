import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { EfiSigner } from '../images/secure-boot.ts';
import { prepareSignedIpxeDir } from '../images/signed-ipxe.ts';

/**
 * The directory the boot server's `/ipxe/` routes and the pxe role's TFTP server hand out: METAL_IPXE_DIR
 * itself, or with Secure Boot (METAL_SECURE_BOOT_KEY) `<data dir>/ipxe-signed`, its EFI binaries
 * signed with the site's key, prepared at start.
 */
export async function servedIpxeDir(config: Pick<Config, 'ipxeDir' | 'dataDir' | 'secureBoot'>, logger: Logger, role: string): Promise<string> {
  if (!config.secureBoot) return config.ipxeDir;
  // A METAL_IPXE_DIR that is not there is reported as before, by what serves it.
  if (!(await stat(config.ipxeDir).catch(() => undefined))?.isDirectory()) return config.ipxeDir;
  const signer = EfiSigner.find(config.secureBoot, `the ${role} role (the iPXE binaries it hands out)`);
  const prepared = await prepareSignedIpxeDir(config.ipxeDir, join(config.dataDir, 'ipxe-signed'), signer);
  if (prepared.signed.length === 0) {
    logger.warn({ ipxe_dir: config.ipxeDir }, `${role}: Secure Boot is on, and ${config.ipxeDir} (METAL_IPXE_DIR) has no .efi binaries to sign; UEFI machines get no iPXE`);
  } else {
    logger.info({ signed: prepared.signed, dir: prepared.dir }, `${role}: iPXE EFI binaries signed for Secure Boot by ${signer.subject}: ${prepared.signed.join(', ')}`);
  }
  return prepared.dir;
}
