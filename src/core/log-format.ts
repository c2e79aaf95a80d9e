/** How log lines are written: JSON lines, readable lines, or readable only on a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Fields shown after the message on a readable line, in this order, when a line has them. */
const SHOWN = ['service_tag', 'build', 'builder', 'role', 'addresses', 'reason', 'action', 'kind'];

/**
 * One JSON log line (as pino writes it) as a readable line: time, level, message, the few fields that
 * matter, and an error's message. Anything that is not JSON is passed through unchanged.
 */
export function formatLogLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 19) : '--:--:--';
  const level = (LEVELS[Number(entry.level)] ?? String(entry.level)).padEnd(5);
  const fields = SHOWN.filter((k) => entry[k] !== undefined).map((k) => `${k}=${show(entry[k])}`);
  const err = entry.err as { message?: unknown } | undefined;
  if (err && typeof err.message === 'string') fields.push(`error=${JSON.stringify(err.message)}`);
  return `${time} ${level} ${String(entry.msg ?? '')}${fields.length ? `  ${fields.join(' ')}` : ''}\n`;
}

function show(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/@-]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}
