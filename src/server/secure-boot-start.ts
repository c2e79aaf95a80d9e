import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/logger.ts';
import { certificateSha256, EfiSigner } from '../images/secure-boot.ts';
import { prepareSignedIpxeDir } from '../images/signed-ipxe.ts';

/**
 * What the boot and pxe roles do at start when Secure Boot is on (METAL_SECURE_BOOT_KEY): sign the
 * iPXE binaries they hand out, and say when the registration kernel is not signed for the site's
 * certificate.
 */

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

/**
 * With Secure Boot on, warns at start when the registration kernel is not signed for
 * METAL_SECURE_BOOT_CERT (built before the key was set, or with another key): machines that enforce
 * Secure Boot would refuse it. Returns whether it warned. A missing registration image is reported
 * elsewhere.
 */
export async function warnUnlessRegistrationSigned(config: Pick<Config, 'imagesDir' | 'secureBoot'>, logger: Logger): Promise<boolean> {
  if (!config.secureBoot) return false;
  let recorded: unknown;
  try {
    recorded = (JSON.parse(await readFile(join(config.imagesDir, 'registration', 'boot.json'), 'utf8')) as { secure_boot?: { cert_sha256?: unknown } }).secure_boot?.cert_sha256;
  } catch {
    return false;
  }
  if (recorded === certificateSha256(config.secureBoot.cert)) return false;
  logger.warn(
    { dir: join(config.imagesDir, 'registration') },
    `boot: Secure Boot is on, and the registration kernel is ${typeof recorded === 'string' ? 'signed for another certificate' : 'not signed'}; machines that enforce Secure Boot will refuse it until it is built again with METAL_SECURE_BOOT_KEY set ("metal image build-registration", or "metal lab image")`,
  );
  return true;
}
