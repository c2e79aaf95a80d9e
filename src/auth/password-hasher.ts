import { hash, verify, type Algorithm } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import { InvalidInputError } from '../core/errors.ts';

const ARGON2ID = 2 as Algorithm;
/** OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. */
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 };

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 1024;

/** Refuses passwords too short to resist guessing or too long to hash cheaply. */
export function checkPasswordStrength(password: string, what = 'password'): void {
  if (typeof password !== 'string' || password.length < PASSWORD_MIN_LENGTH) {
    throw new InvalidInputError(`${what} must be at least ${PASSWORD_MIN_LENGTH} characters`);
  }
  if (password.length > PASSWORD_MAX_LENGTH) throw new InvalidInputError(`${what} must be at most ${PASSWORD_MAX_LENGTH} characters`);
}

/** Hashes passwords with argon2id and verifies them, equalising time for unknown users. */
export class PasswordHasher {
  private dummy: Promise<string> | undefined;

  hash(password: string): Promise<string> {
    return hash(password, OPTIONS);
  }

  /** False for a wrong password or a malformed hash; never throws on bad input. */
  async verify(passwordHash: string, password: string): Promise<boolean> {
    try {
      return await verify(passwordHash, password);
    } catch {
      return false;
    }
  }

  /** Spends as long as a real verification, for a user that does not exist; always false. */
  async verifyDummy(password: string): Promise<false> {
    this.dummy ??= hash(randomBytes(16).toString('hex'), OPTIONS);
    await this.verify(await this.dummy, password);
    return false;
  }
}
