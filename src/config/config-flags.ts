import type { Command } from 'commander';
import { CONFIG_KEYS, ConfigError, flagName, loadConfig, type Config, type ConfigKey } from './config.ts';

/** Adds `--data-dir`, `--listen`, … (one per METAL_* key) to a server-side command. */
export function withConfigFlags(cmd: Command): Command {
  for (const key of CONFIG_KEYS) cmd.option(`--${flagName(key)} <value>`, `overrides ${key}`);
  return cmd;
}

/**
 * The configuration from the environment and a command's parsed flags. An invalid value prints the
 * message naming the key and exits with status 2.
 */
export function configFromFlags(opts: object): Readonly<Config> {
  const flags: Partial<Record<ConfigKey, string>> = {};
  for (const key of CONFIG_KEYS) {
    const v = (opts as Record<string, unknown>)[flagName(key).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
    if (typeof v === 'string') flags[key] = v;
  }
  try {
    return loadConfig(process.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`metal: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}
