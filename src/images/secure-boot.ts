import { spawn } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { findExecutable } from '../core/executables.ts';

/**
 * UEFI Secure Boot signing (METAL_SECURE_BOOT_KEY, METAL_SECURE_BOOT_CERT): every kernel the builder
 * publishes and every iPXE EFI binary the boot server hands out is signed with the site's key, whose
 * certificate the machines' firmware trusts (its `db`). The one place `sbsign` and `sbverify`
 * (Debian sbsigntool) are run, each with an argument array and a time limit.
 */

/** The site's signing key and certificate, as configured. */
export interface SecureBootKeys {
  /** An unencrypted PEM private key. */
  key: string;
  /** Its PEM X.509 certificate. */
  cert: string;
}

/** Secure Boot signing cannot run on this host; the message names the setting and the package. */
export class SecureBootUnavailable extends Error {
  constructor(what: string) {
    super(`METAL_SECURE_BOOT_KEY is set, so ${what} signs with sbsign, and this host has no sbsign on PATH; install sbsigntool (Debian) or pkgs.sbsigntool (NixOS), or unset METAL_SECURE_BOOT_KEY and METAL_SECURE_BOOT_CERT`);
    this.name = 'SecureBootUnavailable';
  }
}

/** A file sbsign refused or could not sign; the message says which and why. */
export class SigningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningError';
  }
}

const SIGN_TIMEOUT_MS = 120_000;

/**
 * Checks a key and certificate pair the way start-up needs: both PEM, the key unencrypted (sbsign
 * cannot ask for a passphrase) and the certificate's public key the key's. Returns a reason to refuse, or
 * undefined when they fit.
 */
export function checkSecureBootKeys(keys: SecureBootKeys): { setting: 'METAL_SECURE_BOOT_KEY' | 'METAL_SECURE_BOOT_CERT'; reason: string } | undefined {
  let keyText: string;
  let certText: string;
  try {
    keyText = readFileSync(keys.key, 'utf8');
  } catch (err) {
    return { setting: 'METAL_SECURE_BOOT_KEY', reason: `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  try {
    certText = readFileSync(keys.cert, 'utf8');
  } catch (err) {
    return { setting: 'METAL_SECURE_BOOT_CERT', reason: `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (/ENCRYPTED/.test(keyText)) {
    return { setting: 'METAL_SECURE_BOOT_KEY', reason: 'is encrypted, and sbsign cannot ask for its passphrase; write an unencrypted copy readable only by metal (openssl pkey -in KEY -out KEY.plain)' };
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certText);
  } catch {
    return { setting: 'METAL_SECURE_BOOT_CERT', reason: 'is not a PEM X.509 certificate' };
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(keyText))) {
      return { setting: 'METAL_SECURE_BOOT_CERT', reason: 'is not the certificate of METAL_SECURE_BOOT_KEY (their public keys differ)' };
    }
  } catch {
    return { setting: 'METAL_SECURE_BOOT_KEY', reason: 'is not a PEM private key' };
  }
  return undefined;
}

/** SHA-256 of a certificate (DER, lower-case hex): what boot.json's `secure_boot.cert_sha256` holds. */
export function certificateSha256(certificate: X509Certificate | string): string {
  const cert = typeof certificate === 'string' ? new X509Certificate(readFileSync(certificate)) : certificate;
  return createHash('sha256').update(cert.raw).digest('hex');
}

/** Signs EFI images (kernels with an EFI stub, iPXE's .efi binaries) with the site's key. */
export class EfiSigner {
  /** SHA-256 of the certificate (DER, lower-case hex): what boot.json records a kernel was signed for. */
  readonly certSha256: string;
  /** The certificate's subject, e.g. `CN=Example Secure Boot db`. */
  readonly subject: string;

  constructor(
    readonly keys: SecureBootKeys,
    private readonly sbsign: string,
  ) {
    const certificate = new X509Certificate(readFileSync(keys.cert));
    this.certSha256 = certificateSha256(certificate);
    this.subject = certificate.subject.replaceAll('\n', ', ');
  }

  /** A signer with sbsign from PATH; throws SecureBootUnavailable naming `what` when there is none. */
  static find(keys: SecureBootKeys, what: string, path = process.env.PATH ?? ''): EfiSigner {
    const sbsign = findExecutable('sbsign', path);
    if (!sbsign) throw new SecureBootUnavailable(what);
    return new EfiSigner(keys, sbsign);
  }

  /**
   * Writes a signed copy of `input` to `output` (through a temporary file beside it, renamed into
   * place). An image signed by someone else before keeps that signature and gains ours.
   */
  async sign(input: string, output: string): Promise<void> {
    const temp = `${output}.signing-${process.pid}`;
    try {
      const result = await run(this.sbsign, ['--key', this.keys.key, '--cert', this.keys.cert, '--output', temp, input], SIGN_TIMEOUT_MS);
      if (result.code !== 0) throw new SigningError(`sbsign could not sign ${input}: ${lastLine(result.output) || `exit ${result.code}`}`);
      await rename(temp, output);
    } finally {
      await rm(temp, { force: true });
    }
  }
}

/** Whether `file` carries a valid signature by `cert` (sbverify); the tests check what was signed with it. */
export async function verifiedBy(file: string, cert: string, path = process.env.PATH ?? ''): Promise<boolean> {
  const sbverify = findExecutable('sbverify', path);
  if (!sbverify) throw new Error('no sbverify on PATH; install sbsigntool');
  const result = await run(sbverify, ['--cert', cert, file], SIGN_TIMEOUT_MS);
  return result.code === 0;
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let output = '';
    const take = (d: Buffer) => {
      if (output.length < 16_384) output += d.toString();
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .at(-1)
      ?.replace(/[^\x20-\x7e]/g, '?')
      .slice(0, 240) ?? ''
  );
}
