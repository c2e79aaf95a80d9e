import type { Build } from '../../core/types.ts';
import { ApiError, type ApiClient } from './api-client.ts';
import { printableLog } from './table.ts';

const FINISHED = new Set(['success', 'failed', 'cancelled']);

/** Whether a build status is final. */
export function isFinished(status: string): boolean {
  return FINISHED.has(status);
}

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
 * that stalls after the build ended cannot hang the command. If the stream drops early, the rest of the log
 * is read from the build itself.
 */
export async function followBuild(client: ApiClient, id: number, options: FollowOptions): Promise<Build> {
  let received = 0;
  let lastStatus = '';
  const report = (build: Build) => {
    if (build.status !== lastStatus) {
      lastStatus = build.status;
      options.onStatus?.(build);
    }
  };
  const first = await client.get<Build>(`/api/v1/builds/${id}`, { signal: options.signal });
  report(first);
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;
  const watcher = setInterval(() => {
    client
      .get<Build>(`/api/v1/builds/${id}`, { signal })
      .then((build) => {
        report(build);
        // The stream should end by itself; this only bounds how long a stalled one is waited for.
        if (isFinished(build.status) && build.log_output.length <= received) stop.abort();
      })
      .catch(() => {});
  }, options.statusIntervalMs ?? 2000);
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
        received += text.length;
        options.write(printableLog(text));
      }
    } catch (err) {
      if (options.signal?.aborted) throw err;
      // the stream broke or stalled after the build ended: the build record has the rest
    } finally {
      done();
    }
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const noFollowRoute = err instanceof ApiError && err.status === 404 && err.apiMessage.startsWith('no route');
    if (!noFollowRoute && !stop.signal.aborted) throw err;
  } finally {
    clearInterval(watcher);
  }
  return await pollRest(client, id, () => received, (n) => (received = n), options, report);
}

/** Reads the build until it has finished, printing log text not yet printed. */
async function pollRest(
  client: ApiClient,
  id: number,
  received: () => number,
  setReceived: (n: number) => void,
  options: FollowOptions,
  report: (build: Build) => void,
): Promise<Build> {
  for (;;) {
    const build = await client.get<Build>(`/api/v1/builds/${id}`, { signal: options.signal });
    report(build);
    if (build.log_output.length > received()) {
      options.write(printableLog(build.log_output.slice(received())));
      setReceived(build.log_output.length);
    }
    if (isFinished(build.status)) return build;
    await pause(options.statusIntervalMs ?? 2000, options.signal);
  }
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
