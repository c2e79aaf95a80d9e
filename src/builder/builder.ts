import type { AppContext } from '../server/context.ts';

/** A running builder role. */
export interface RunningBuilder {
  stop(): Promise<void>;
}

/** The `builder` role: claims pending builds and runs them. */
export async function startBuilder(ctx: AppContext): Promise<RunningBuilder> {
  ctx.logger.warn('builder: the image builder is not part of this version yet; builds stay pending');
  return { stop: async () => {} };
}
