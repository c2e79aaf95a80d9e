import { BUILDER_FORGOTTEN_AFTER_MS, BUILDER_HEARTBEAT_MS } from '../core/builder-presence.ts';
import type { Logger } from '../core/logger.ts';
import type { BuilderPresence, BuilderPresenceStore } from '../core/ports.ts';
import { RepeatedFailure } from '../core/repeated-failure.ts';

/** A builder's heartbeat: its row written now and every `intervalMs`, removed by `stop()`. */
export interface PresenceHeartbeat {
  stop(): Promise<void>;
}

/**
 * Writes the builder's row at once and then every `intervalMs` (what it runs comes from `running()`),
 * removing rows of builders silent for a day as it goes. A failed write (the database down) is logged
 * once and retried at the next beat; `stop()` removes the row.
 */
export async function startPresenceHeartbeat(
  store: BuilderPresenceStore,
  self: Omit<BuilderPresence, 'lastSeenAt' | 'running' | 'startedAt'>,
  running: () => number,
  logger: Logger,
  intervalMs = BUILDER_HEARTBEAT_MS,
): Promise<PresenceHeartbeat> {
  const startedAt = new Date().toISOString();
  const failures = new RepeatedFailure(logger, 'builder: could not say it is running; trying again shortly', 'builder: its heartbeat is written again');
  let beating: Promise<void> | undefined;
  const beat = () => {
    beating ??= (async () => {
      try {
        const now = Date.now();
        await store.put({ ...self, startedAt, lastSeenAt: new Date(now).toISOString(), running: running() });
        await store.prune(new Date(now - BUILDER_FORGOTTEN_AFTER_MS).toISOString());
        failures.succeeded();
      } catch (err) {
        failures.failed(err);
      }
    })().finally(() => (beating = undefined));
    return beating;
  };
  await beat();
  const timer = setInterval(() => void beat(), intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await beating;
      await store.remove(self.name).catch((err: unknown) => logger.warn({ err }, 'builder: could not remove its row; it goes silent instead'));
    },
  };
}
