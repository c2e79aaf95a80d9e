import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Logger } from '../core/logger.ts';
import type { Notifier, SignalOrigin } from '../core/notifier.ts';
import { listenWithReconnect } from './pg-listener.ts';
import type { Schema } from './schema.ts';

/** The build signals that cross processes. */
const RELAYED = ['build.requested', 'build.cancelled', 'build.updated'] as const;
type RelayedSignal = (typeof RELAYED)[number];


/** The NOTIFY channel of one database (and schema), e.g. `metal_builds` or `metal_builds_fleet`. */
export function buildChannel(databaseUrl: string): string {
  const schema = new URL(databaseUrl).searchParams.get('schema');
  return schema && /^[a-z_][a-z0-9_]{0,40}$/.test(schema) ? `metal_builds_${schema}` : 'metal_builds';
}

/** A running relay; stopping it ends its LISTEN connection. */
export interface SignalRelay {
  stop(): Promise<void>;
}

/**
 * On PostgreSQL, carries this process's build signals (requested, cancelled, updated) to every other
 * process through NOTIFY, and theirs to this process's notifier, so a builder anywhere wakes at once
 * and a log followed through any API replica streams as it grows. Polling remains the safety net
 * when the connection drops; the relay reconnects by itself.
 */
export async function startBuildSignalRelay(db: Kysely<Schema>, databaseUrl: string, notifier: Notifier, logger: Logger): Promise<SignalRelay> {
  const channel = buildChannel(databaseUrl);
  // Each process tags what it sends, to ignore its own notifications when they come back.
  const self = randomBytes(6).toString('hex');
  const send = (signal: RelayedSignal) => (buildId: number, origin?: SignalOrigin) => {
    if (origin === 'relay') return;
    sql`select pg_notify(${channel}, ${`${signal}:${buildId}:${self}`})`
      .execute(db)
      .catch((err: unknown) => logger.warn({ err }, 'storage: could not send a build notification'));
  };
  const senders = RELAYED.map((signal) => [signal, send(signal)] as const);
  for (const [signal, handler] of senders) notifier.on(signal, handler);

  const listener = await listenWithReconnect(
    {
      url: databaseUrl,
      channel,
      applicationName: `metal build signals ${channel}`,
      onNotification: (payload) => {
        const match = /^(build\.requested|build\.cancelled|build\.updated):(\d{1,15}):([0-9a-f]{12})$/.exec(payload);
        if (!match || match[3] === self) return;
        notifier.emit(match[1] as RelayedSignal, Number(match[2]), 'relay');
      },
      logger,
      what: 'the build signals (builders poll meanwhile)',
    },
    true,
  );
  return {
    async stop() {
      for (const [signal, handler] of senders) notifier.off(signal, handler);
      await listener.stop();
    },
  };
}
