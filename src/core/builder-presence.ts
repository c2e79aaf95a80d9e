import type { BuilderPresence, BuilderPresenceStore } from './ports.ts';

/** How often a running builder writes its row. */
export const BUILDER_HEARTBEAT_MS = 10_000;
/** A builder not heard from for this long is taken as gone (three heartbeats missed). */
export const BUILDER_SILENT_AFTER_MS = 3 * BUILDER_HEARTBEAT_MS;
/** Rows of builders silent this long are removed (by any running builder). */
export const BUILDER_FORGOTTEN_AFTER_MS = 24 * 3600_000;

/** A builder as the API and dashboard show it. */
export interface BuilderStatus extends BuilderPresence {
  /** Heard from within BUILDER_SILENT_AFTER_MS. */
  live: boolean;
}

/** Every builder with a row, live or silent, by name. */
export async function builderStatuses(store: Pick<BuilderPresenceStore, 'list'>, now = Date.now()): Promise<BuilderStatus[]> {
  return (await store.list()).map((b) => ({ ...b, live: now - Date.parse(b.lastSeenAt) <= BUILDER_SILENT_AFTER_MS }));
}

/**
 * What a waiting build should say about builders, or undefined when one is live: none has ever said it
 * runs, or the last one heard from went silent (and when).
 */
export function noBuilderNotice(builders: readonly BuilderStatus[]): string | undefined {
  if (builders.some((b) => b.live)) return undefined;
  const last = [...builders].sort((a, b) => b.lastSeenAt.localeCompare(a.lastSeenAt))[0];
  const start = 'start one (metal builder, or metal serve on a host with Nix; see docs/builder.md)';
  return last
    ? `No builder is running: the last one, ${last.name}, was last heard from at ${last.lastSeenAt}. Builds wait until a builder takes them; ${start}.`
    : `No builder is running. Builds wait until a builder takes them; ${start}.`;
}
