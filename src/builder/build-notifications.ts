import { sql } from 'kysely';
import pg from 'pg';
import type { AppContext } from '../server/context.ts';
import type { Logger } from '../core/logger.ts';

/** A cross-process build signal carried by PostgreSQL NOTIFY. */
export interface BuildSignal {
  kind: 'requested' | 'cancelled';
  buildId: number;
}

/** The NOTIFY channel of one database (and schema), e.g. `metal_builds` or `metal_builds_fleet`. */
export function buildChannel(databaseUrl: string): string {
  const schema = new URL(databaseUrl).searchParams.get('schema');
  return schema && /^[a-z_][a-z0-9_]{0,40}$/.test(schema) ? `metal_builds_${schema}` : 'metal_builds';
}

/**
 * On PostgreSQL, repeats this process's build requests and cancellations as NOTIFY, so builders in
 * other processes wake at once. Returns how to stop; does nothing on SQLite.
 */
export function forwardBuildSignals(ctx: AppContext): () => void {
  if (ctx.storage.dialect !== 'postgres') return () => {};
  const channel = buildChannel(ctx.config.databaseUrl);
  const send = (signal: BuildSignal) => {
    sql`select pg_notify(${channel}, ${`${signal.kind}:${signal.buildId}`})`
      .execute(ctx.storage.db)
      .catch((err: unknown) => ctx.logger.warn({ err }, 'builder: could not send a build notification'));
  };
  const onRequested = (buildId: number) => send({ kind: 'requested', buildId });
  const onCancelled = (buildId: number) => send({ kind: 'cancelled', buildId });
  ctx.notifier.on('build.requested', onRequested);
  ctx.notifier.on('build.cancelled', onCancelled);
  return () => {
    ctx.notifier.off('build.requested', onRequested);
    ctx.notifier.off('build.cancelled', onCancelled);
  };
}

/** A LISTEN connection; closing it ends the connection. */
export interface SignalListener {
  close(): Promise<void>;
}

/**
 * Listens for build signals on a dedicated PostgreSQL connection. If the connection drops, the
 * builder's short poll still finds work; `listenForBuildSignals` may be called again to reconnect.
 */
export async function listenForBuildSignals(
  databaseUrl: string,
  onSignal: (signal: BuildSignal) => void,
  logger: Logger,
  onLost: () => void,
): Promise<SignalListener> {
  const url = new URL(databaseUrl);
  const channel = buildChannel(databaseUrl);
  url.searchParams.delete('schema');
  const client = new pg.Client({ connectionString: url.toString() });
  let closed = false;
  client.on('error', (err) => {
    if (closed) return;
    logger.warn({ err }, 'builder: the LISTEN connection failed; polling until it is back');
    onLost();
  });
  client.on('notification', (msg) => {
    const match = /^(requested|cancelled):(\d{1,15})$/.exec(msg.payload ?? '');
    if (msg.channel === channel && match) onSignal({ kind: match[1] as BuildSignal['kind'], buildId: Number(match[2]) });
  });
  await client.connect();
  await client.query(`LISTEN "${channel}"`);
  return {
    async close() {
      closed = true;
      await client.end().catch(() => undefined);
    },
  };
}
