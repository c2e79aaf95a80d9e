import type { Build } from '../../core/types.ts';
import { ApiError, type ApiClient } from './api-client.ts';
import { LogPrinter, printableLog } from './table.ts';

const FINISHED = new Set(['success', 'failed', 'cancelled']);

/** Whether a build status is final. */
export function isFinished(status: string): boolean {
  return FINISHED.has(status);
}

/** Where a followed build's log and progress go. */
export interface FollowOptions {
  /** Where log text goes (standard output, or standard error when stdout carries JSON). */
  write: (text: string) => void;
  /** Told about each status the build passes through, for progress on standard error. */
  onStatus?: (build: Build) => void;
  signal?: AbortSignal;
  /** How often to look at the build's status while its log streams (ms). */
  statusIntervalMs?: number;
}

/**
 * Streams a build's log from the follow endpoint until the build finishes, and returns the finished build.
 * While the log streams, the build's status is checked now and then, so progress is reported and a stream
 * still open after the build ended cannot hang the command. If the stream breaks, or the server has no
 * follow endpoint, the rest of the log is read from the build record.
 */
export async function followBuild(client: ApiClient, id: number, options: FollowOptions): Promise<Build> {
  let received = '';
  let lastStatus = '';
  const report = (build: Build) => {
    if (build.status !== lastStatus) {
      lastStatus = build.status;
      options.onStatus?.(build);
    }
  };
  report(await client.get<Build>(`/api/v1/builds/${id}`, { signal: options.signal }));
  const stalled = new AbortController();
  const signal = options.signal ? AbortSignal.any([stalled.signal, options.signal]) : stalled.signal;
  let finishedChecks = 0;
  const watcher = setInterval(() => {
    client
      .get<Build>(`/api/v1/builds/${id}`, { signal })
      .then((build) => {
        report(build);
        // The stream ends by itself when the build does; this bounds the wait for one that does not.
        if (isFinished(build.status) && ++finishedChecks >= 2) stalled.abort();
      })
      .catch(() => {});
  }, options.statusIntervalMs ?? 2000);
  let complete = false;
  const printer = new LogPrinter(options.write);
  try {
    const { response, done } = await client.send('GET', `/api/v1/builds/${id}/log`, {
      query: { follow: 1 },
      headers: { accept: 'text/plain' },
      streaming: true,
      signal,
    });
    try {
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        received += text;
        printer.push(text);
      }
      complete = true;
    } catch (err) {
      if (options.signal?.aborted) throw err;
    } finally {
      printer.flush();
      done();
    }
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const noFollowRoute = err instanceof ApiError && err.status === 404 && err.apiMessage.startsWith('no route');
    if (!noFollowRoute && !stalled.signal.aborted) throw err;
  } finally {
    clearInterval(watcher);
  }
  for (;;) {
    const build = await client.get<Build>(`/api/v1/builds/${id}`, { signal: options.signal });
    report(build);
    if (!complete) received = writeRest(build.log_output, received, options.write);
    if (isFinished(build.status)) return build;
    await pause(options.statusIntervalMs ?? 2000, options.signal);
  }
}

/** Prints the part of the stored log after what was already printed; returns what has now been printed. */
function writeRest(log: string, printed: string, write: (text: string) => void): string {
  const at = printed ? log.lastIndexOf(printed.slice(-4096)) : 0;
  if (at < 0) return printed;
  const rest = log.slice(at + Math.min(printed.length, 4096));
  if (rest) write(printableLog(rest));
  return printed + rest;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
