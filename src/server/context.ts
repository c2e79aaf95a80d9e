import type { preHandlerAsyncHookHandler } from 'fastify';
import type { Config } from '../config/config.ts';
import { BuildService } from '../core/build-service.ts';
import { MachineService } from '../core/machine-service.ts';
import { Notifier } from '../core/notifier.ts';
import { ImageLayout } from '../images/image-layout.ts';
import type { Authenticator } from '../http/access.ts';
import { AuthService } from '../auth/auth-service.ts';
import { createAuthenticator } from '../auth/authenticator.ts';
import { createEnrollGuard } from '../auth/enroll-guard.ts';
import { ensureFirstAdmin } from '../auth/first-admin.ts';
import { loadSecretKey } from '../auth/secret-key.ts';
import { migrate, openDatabase } from '../storage/database.ts';
import { Storage } from '../storage/storage.ts';
import type { Logger } from '../core/logger.ts';

/** Everything the roles of one process share. Built once by `createContext`; roles only read it. */
export interface AppContext {
  config: Readonly<Config>;
  logger: Logger;
  storage: Storage;
  notifier: Notifier;
  images: ImageLayout;
  machines: MachineService;
  builds: BuildService;
  authenticator: Authenticator;
  /** Users, sessions, API tokens, and the secret box for sensitive columns. */
  auth: AuthService;
  /** Runs before enrollment (rate limit, enrollment token); set by the auth module. */
  enrollGuard?: preHandlerAsyncHookHandler;
  close(): Promise<void>;
}

export interface ContextOptions {
  /** Run migrations on open (default true). */
  migrate?: boolean;
  /** Replaces the real (token and session) authenticator; the first admin is then not created. */
  authenticator?: Authenticator;
}

/** Opens the database, runs migrations, and wires the services. */
export async function createContext(config: Readonly<Config>, logger: Logger, options: ContextOptions = {}): Promise<AppContext> {
  const database = await openDatabase(config.databaseUrl);
  try {
    if (options.migrate !== false) {
      const applied = await migrate(database);
      if (applied.length > 0) logger.info({ applied }, 'storage: migrations applied');
    }
  } catch (err) {
    await database.close();
    throw err;
  }
  const storage = new Storage(database);
  let auth: AuthService;
  try {
    auth = new AuthService(storage, logger, loadSecretKey(config));
    if (!options.authenticator) await ensureFirstAdmin(auth, config, logger);
  } catch (err) {
    await database.close();
    throw err;
  }
  const notifier = new Notifier();
  const images = new ImageLayout(config.imagesDir);
  const ctx: AppContext = {
    config,
    logger,
    storage,
    notifier,
    images,
    machines: new MachineService(storage, notifier, images),
    builds: new BuildService(storage, notifier),
    authenticator: options.authenticator ?? createAuthenticator(auth),
    auth,
    enrollGuard: createEnrollGuard(config),
    close: () => database.close(),
  };
  return ctx;
}
