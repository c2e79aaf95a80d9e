import pg from 'pg';
import type { Logger } from '../core/logger.ts';
import { RepeatedFailure } from '../core/repeated-failure.ts';

/** How long a lost LISTEN connection waits before it is tried again. */
const RECONNECT_MS = 1000;

/** What a LISTEN connection is for. */
export interface ListenOptions {
  /** The database URL (its `schema` parameter is not a connection setting and is dropped here). */
  url: string;
  channel: string;
  /** Shown in `pg_stat_activity`, so an operator can tell the connection apart (PostgreSQL keeps 63 bytes). */
  applicationName: string;
  /** Each notification's payload on the channel. */
  onNotification(payload: string): void;
  /**
   * Called each time a connection listens, the first and every replacement: notifications sent while
   * none listened are lost, so whoever relies on them catches up here.
   */
  onListening?(): void;
  logger: Logger;
  /** What the log says was lost, e.g. `the change feed`. */
  what: string;
}

/** A LISTEN connection kept open; `stop` ends it. */
export interface Listener {
  stop(): Promise<void>;
}

/**
 * A dedicated PostgreSQL connection that LISTENs on one channel and is replaced, a second after, when
 * it errs or the server closes it (a restart, `pg_terminate_backend`, a proxy's idle timeout), for as
 * long as it runs. With `retryFirst` a first connection that fails is retried the same way instead of
 * failing the caller.
 */
export async function listenWithReconnect(options: ListenOptions, retryFirst = false): Promise<Listener> {
  const url = new URL(options.url);
  url.searchParams.delete('schema');
  const { logger, what } = options;
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  // While the server is down, one line at once and one a minute, not one a second.
  const failures = new RepeatedFailure(logger, `storage: LISTEN for ${what} failed; trying again shortly`, `storage: LISTEN for ${what} works again`);
  const connect = async () => {
    const next = new pg.Client({ connectionString: url.toString(), application_name: options.applicationName.slice(0, 63) });
    const lost = (err?: Error) => {
      if (stopped || client !== next) return;
      logger.warn({ err }, `storage: the LISTEN connection of ${what} was lost; reconnecting`);
      client = undefined;
      void next.end().catch(() => undefined);
      retry = setTimeout(reconnect, RECONNECT_MS);
    };
    next.on('error', lost);
    next.on('end', () => lost());
    next.on('notification', (msg) => {
      if (msg.channel === options.channel) options.onNotification(msg.payload ?? '');
    });
    await next.connect();
    await next.query(`LISTEN "${options.channel.replaceAll('"', '""')}"`);
    if (stopped) {
      await next.end();
      return;
    }
    client = next;
    failures.succeeded();
    options.onListening?.();
  };
  const reconnect = () => {
    if (stopped) return;
    connect().catch((err: unknown) => {
      failures.failed(err);
      retry = setTimeout(reconnect, RECONNECT_MS);
    });
  };
  try {
    await connect();
  } catch (err) {
    if (!retryFirst) throw err;
    failures.failed(err);
    retry = setTimeout(reconnect, RECONNECT_MS);
  }
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}
