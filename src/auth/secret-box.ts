import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Encrypts sensitive column values (e.g. BMC passwords) with AES-256-GCM. The stored form is
 * `v1:<base64url(iv | ciphertext | tag)>`; the version lets the format change without a migration.
 * `context` (e.g. `machines.bmc_password:42`) is authenticated, so a value cannot be moved to another row.
 */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('secret-box: the key must be 32 bytes');
  }

  encrypt(plaintext: string, context = ''): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
  }

  /** Throws when the value was tampered with, belongs to another context or key, or has an unknown format. */
  decrypt(sealed: string, context = ''): string {
    const colon = sealed.indexOf(':');
    const version = colon < 0 ? '' : sealed.slice(0, colon);
    if (version !== VERSION) throw new Error(`secret-box: unknown format ${JSON.stringify(version.slice(0, 8))}`);
    const bytes = Buffer.from(sealed.slice(colon + 1), 'base64url');
    if (bytes.length < IV_BYTES + TAG_BYTES) throw new Error('secret-box: value too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('secret-box: the value does not decrypt with this key (tampered, or another key or context)');
    }
  }
}
