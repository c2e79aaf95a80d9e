import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../config/config.ts';
import { DomainError } from '../core/errors.ts';
import { SYSTEM_ACTOR } from '../core/types.ts';
import type { Logger } from '../core/logger.ts';
import type { AuthService } from './auth-service.ts';
import { generatePassword } from './opaque-token.ts';

/** Where the generated password of the first admin is written when METAL_ADMIN_PASSWORD is unset. */
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

/**
 * On a database without users, creates `admin` with METAL_ADMIN_PASSWORD, or with a random password
 * written to `<data dir>/initial-admin-password` (mode 0600). There are never default credentials.
 */
export async function ensureFirstAdmin(auth: AuthService, config: Pick<Config, 'adminPassword' | 'dataDir'>, logger: Logger): Promise<void> {
  if ((await auth.users.list(1, 0)).total > 0) return;
  if (config.adminPassword !== undefined) {
    try {
      if (await auth.users.createFirstAdmin(config.adminPassword, SYSTEM_ACTOR)) {
        logger.info('auth: created the first admin, "admin", with the password from METAL_ADMIN_PASSWORD');
      }
    } catch (err) {
      if (err instanceof DomainError) throw new ConfigError('METAL_ADMIN_PASSWORD', '(hidden)', err.message);
      throw err;
    }
    return;
  }
  // The file is written before the account exists, so a crash can never leave an admin nobody knows the password of.
  const password = generatePassword();
  const path = join(config.dataDir, INITIAL_PASSWORD_FILE);
  const pending = `${path}.${process.pid}.tmp`;
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(pending, `${password}\n`, { mode: 0o600 });
  chmodSync(pending, 0o600);
  try {
    if (!(await auth.users.createFirstAdmin(password, SYSTEM_ACTOR))) return;
    renameSync(pending, path);
  } finally {
    rmSync(pending, { force: true });
  }
  logger.warn({ file: path }, `auth: created the first admin, "admin"; its password is in ${path} (sign in and change it: metal login, then metal passwd, or PUT /api/v1/auth/password; then delete the file)`);
}
