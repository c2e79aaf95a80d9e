import type { ServerResponse } from 'node:http';
import { isBuildFinished, type BuildStatus } from '../core/lifecycle.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { formatDuration } from './format.ts';

/** How often a stream re-reads the build when no in-process notification came (builders in other processes). */
const POLL_MS = 2000;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_TICKS = 8;

/** Open log streams, so shutting down can end them instead of waiting for browsers to leave. */
export class BuildLogStreams {
  private readonly open = new Set<() => void>();

  /**
   * Streams a build's log from `offset` as server-sent events until it finishes: `log` (appended text),
   * `reset` (the log restarted; full text), `status` (JSON: status, error, duration) and `end` (the
   * build's final status, `deleted`, or `signed-out`). `release` is called when the stream ends; the
   * returned function ends it with `end: signed-out` (its credential died).
   */
  start(deps: Pick<DashboardDeps, 'reads' | 'notifier' | 'logger'>, buildId: number, offset: number, res: ServerResponse, release: () => void = () => {}): () => void {
    let sent = offset;
    let lastStatus = '';
    let busy = false;
    let again = false;
    let ticks = 0;
    const send = (event: string, data: string) => {
      res.write(`event: ${event}\n${data.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('')}\n`);
    };
    const stop = () => {
      if (!this.open.delete(stop)) return;
      deps.notifier.off('build.updated', onUpdate);
      clearInterval(timer);
      release();
      res.end();
    };
    const refresh = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          const build = await deps.reads.builds.findById(buildId);
          if (!this.open.has(stop)) return;
          if (!build) {
            send('end', 'deleted');
            stop();
            return;
          }
          const log = build.log_output;
          if (log.length < sent) {
            send('reset', log);
            sent = log.length;
          } else if (log.length > sent) {
            send('log', log.slice(sent));
            sent = log.length;
          }
          const status = JSON.stringify({ status: build.status, error: build.error, duration: formatDuration(build.started_at, build.completed_at) });
          if (status !== lastStatus) {
            send('status', status);
            lastStatus = status;
          }
          if (isBuildFinished(build.status as BuildStatus)) {
            send('end', build.status);
            stop();
            return;
          }
        } while (again);
      } catch (err) {
        deps.logger.warn({ err, build: buildId }, `dashboard: the log stream of build ${buildId} failed`);
        stop();
      } finally {
        busy = false;
      }
    };
    const onUpdate = (id: number) => {
      if (id === buildId) void refresh();
    };
    const timer = setInterval(() => {
      ticks += 1;
      if (ticks % KEEPALIVE_TICKS === 0) res.write(': keep-alive\n\n');
      void refresh();
    }, POLL_MS);
    this.open.add(stop);
    deps.notifier.on('build.updated', onUpdate);
    res.on('close', stop);
    res.write('retry: 3000\n\n');
    void refresh();
    return () => {
      if (!this.open.has(stop)) return;
      send('end', 'signed-out');
      stop();
    };
  }

  /** Ends every open stream. */
  closeAll(): void {
    for (const stop of [...this.open]) stop();
  }
}
