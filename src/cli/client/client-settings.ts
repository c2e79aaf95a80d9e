import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, CliError } from './api-client.ts';

/** What `metal login` remembers: `$XDG_CONFIG_HOME/metal/config.json`. */
export interface ClientSettings {
  /** e.g. `http://metal.example:8080` */
  url?: string;
  token?: string;
  /** Who logged in, for `metal logout` and messages. */
  username?: string;
  /** When the session token expires (ISO 8601), as the server said. */
  expires_at?: string;
}

type Env = Record<string, string | undefined>;

/** The directory holding the client's settings (`$XDG_CONFIG_HOME/metal`, default `~/.config/metal`). */
export function settingsDir(env: Env = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'metal');
}

/** The settings file, `<settingsDir>/config.json`. */
export function settingsPath(env: Env = process.env): string {
  return join(settingsDir(env), 'config.json');
}

/** Reads the saved settings; a missing file is empty settings, a broken one is an error naming the file. */
export function readSettings(env: Env = process.env): ClientSettings {
  const path = settingsPath(env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    const out: ClientSettings = {};
    for (const key of ['url', 'token', 'username', 'expires_at'] as const) {
      const value = (parsed as Record<string, unknown>)[key];
      if (typeof value === 'string') out[key] = value;
    }
    return out;
  } catch (err) {
    throw new CliError(`${path} is not valid settings (${(err as Error).message}); remove it and run metal login`);
  }
}

/** Saves settings readable by their owner only (directory 0700, file 0600), replacing the file atomically. */
export function writeSettings(settings: ClientSettings, env: Env = process.env): string {
  const dir = settingsDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const path = settingsPath(env);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(settings, null, 2) + '\n', { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
  return path;
}

/** The server URL and token to use: METAL_URL and METAL_TOKEN override what `metal login` saved. */
export function resolveConnection(env: Env = process.env): { url: string | undefined; token: string | undefined } {
  const saved = env.METAL_URL && env.METAL_TOKEN ? {} : readSettings(env);
  return { url: env.METAL_URL || saved.url, token: env.METAL_TOKEN || saved.token };
}

/** An API client for the current user, or a clear error when no server is known. */
export function clientFromEnvironment(env: Env = process.env): ApiClient {
  const { url, token } = resolveConnection(env);
  if (!url) throw new CliError('no server: run metal login --url URL --user NAME, or set METAL_URL');
  return new ApiClient({ url, token });
}
