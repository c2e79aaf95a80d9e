import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureBootKeys } from '../../src/images/secure-boot.ts';

/** Debian's ovmf ships firmware variables with this certificate enrolled (PK, KEK and db), and its key. */
export const SNAKEOIL_CERT = '/usr/share/ovmf/PkKek-1-snakeoil.pem';
const SNAKEOIL_KEY = '/usr/share/ovmf/PkKek-1-snakeoil.key';
/** The passphrase of that key, as /usr/share/doc/ovmf/README.Debian gives it. */
const SNAKEOIL_PASSPHRASE = 'snakeoil';

/** A real EFI image to sign: Debian's iPXE for UEFI (package ipxe). */
export const EFI_SAMPLE = '/usr/lib/ipxe/snponly.efi';

/**
 * For tests that sign: undefined when sbsign, sbverify and openssl are here (and with `efiSample`,
 * EFI_SAMPLE), else the reason to skip, announced loudly. In CI (`CI=true`) a missing tool is an
 * error instead.
 */
export function signingSkipReason(options: { snakeoil?: boolean; efiSample?: boolean } = {}): string | undefined {
  const missing: string[] = [];
  if (options.efiSample && !existsSync(EFI_SAMPLE)) missing.push(`${EFI_SAMPLE} (Debian package ipxe)`);
  for (const tool of ['sbsign', 'sbverify', 'openssl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      missing.push(tool);
    }
  }
  if (options.snakeoil && !existsSync(SNAKEOIL_KEY)) missing.push(`${SNAKEOIL_KEY} (Debian package ovmf)`);
  if (missing.length === 0) return undefined;
  const reason = `no ${missing.join(', ')}; install sbsigntool openssl ovmf ipxe`;
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING Secure Boot signing tests: ${reason} ***\n`);
  return reason;
}

/** A fresh self-signed key and certificate in `dir` (openssl), as a site would make for its db. */
export function makeSigningKeys(dir: string, name = 'Metal test db'): SecureBootKeys {
  const key = join(dir, `${name.replaceAll(' ', '-')}.key`);
  const cert = join(dir, `${name.replaceAll(' ', '-')}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-days', '2'], { stdio: 'ignore', timeout: 60_000 });
  return { key, cert };
}

/** Debian's snakeoil key (unencrypted into `dir`, mode 0600) and certificate: what OVMF_VARS_4M.snakeoil.fd trusts. */
export function snakeoilKeys(dir: string): SecureBootKeys {
  const key = join(dir, 'snakeoil.key');
  const plain = createPrivateKey({ key: readFileSync(SNAKEOIL_KEY), format: 'pem', passphrase: SNAKEOIL_PASSPHRASE }).export({ type: 'pkcs8', format: 'pem' });
  writeFileSync(key, plain, { mode: 0o600 });
  return { key, cert: SNAKEOIL_CERT };
}
