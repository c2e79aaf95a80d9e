/** Node's network error codes for a server that is not there or went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/**
 * PostgreSQL's SQLSTATEs for a server that cannot take the query now: shutting down or starting
 * (57P01 to 57P03), out of connections (53300), and the connection exceptions of class 08.
 */
const POSTGRES_STATES = /^(57P0[123]|53300|08...)$/;
/** node-postgres's own messages when a connection ends or cannot be made in time. */
const POSTGRES_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * True when `err` says the database did not answer (down, restarting, unreachable, out of
 * connections, or on SQLite locked by another writer past the busy timeout), as opposed to a query it
 * refused: the request may work if tried again shortly.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code) || POSTGRES_STATES.test(code) || code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')) return true;
  if (typeof e.message === 'string' && POSTGRES_MESSAGES.test(e.message)) return true;
  // Connecting to a name with several addresses fails with one error for each.
  return Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(isDatabaseUnavailable);
}
