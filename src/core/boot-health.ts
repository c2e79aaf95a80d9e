import { InvalidInputError } from './errors.ts';
import type { BootHealth } from './types.ts';

/** The most output a health check result carries (the image sends the last 2 KiB). */
export const MAX_HEALTH_OUTPUT = 2048;

/**
 * Checks the `health` object of a booted report: `{ok: boolean, exit_code: 0..255 | null, output:
 * string of at most 2048 characters}` and nothing else. Returns a fresh object (only those fields).
 */
export function assertBootHealth(value: unknown): BootHealth {
  const bad = (why: string) => new InvalidInputError(`health ${why}`, { field: 'health' });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('must be an object {ok, exit_code, output}');
  const v = value as Record<string, unknown>;
  const extra = Object.keys(v).find((k) => !['ok', 'exit_code', 'output'].includes(k));
  if (extra !== undefined) throw bad(`has an unknown field ${JSON.stringify(extra.slice(0, 40))}`);
  if (typeof v.ok !== 'boolean') throw bad('.ok must be true or false');
  const code = v.exit_code ?? null;
  if (code !== null && (typeof code !== 'number' || !Number.isInteger(code) || code < 0 || code > 255)) throw bad('.exit_code must be a whole number from 0 to 255, or null');
  const output = v.output ?? '';
  if (typeof output !== 'string') throw bad('.output must be a string');
  if (output.length > MAX_HEALTH_OUTPUT) throw bad(`.output is too long: at most ${MAX_HEALTH_OUTPUT} characters (the last 2 KiB of what the check printed)`);
  return { ok: v.ok, exit_code: code, output };
}
