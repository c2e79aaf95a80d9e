import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Config } from '../config/config.ts';

/** The file the key is generated into when METAL_SECRET_KEY is unset. */
export const SECRET_KEY_FILE = 'secret.key';

/** Parses a 32-byte key written as 64 hex digits or as base64; throws ConfigError naming METAL_SECRET_KEY. */
export function parseSecretKey(value: string, key = 'METAL_SECRET_KEY'): Buffer {
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const bytes = Buffer.from(text.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
    if (bytes.length === 32) return bytes;
  }
  throw new ConfigError(key, '(hidden)', 'expected a 32-byte key as 64 hex digits or 44 base64 characters, e.g. from `openssl rand -hex 32`');
}

/**
 * The key that encrypts secrets at rest: METAL_SECRET_KEY, or `<data dir>/secret.key`, generated
 * (mode 0600) on first start. Processes that share a database must share the key.
 */
export function loadSecretKey(config: Pick<Config, 'secretKey' | 'dataDir'>): Buffer {
  if (config.secretKey !== undefined) return parseSecretKey(config.secretKey);
  const path = join(config.dataDir, SECRET_KEY_FILE);
  try {
    return parseSecretKey(readFileSync(path, 'utf8'), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(config.dataDir, { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(path, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
    return key;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parseSecretKey(readFileSync(path, 'utf8'), path);
    throw err;
  }
}

/**
 * Names a secret key without revealing it: `sha256:` and the first 16 hex digits of its SHA-256. A
 * backup records it, so that a restore can tell the key its secrets need from another.
 */
export function secretKeyFingerprint(key: Buffer): string {
  return `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

/** The key METAL_SECRET_KEY or `<data dir>/secret.key` holds, without generating one; undefined when neither is there. */
export function existingSecretKey(config: Pick<Config, 'secretKey' | 'dataDir'>): Buffer | undefined {
  if (config.secretKey !== undefined || existsSync(join(config.dataDir, SECRET_KEY_FILE))) return loadSecretKey(config);
  return undefined;
}
