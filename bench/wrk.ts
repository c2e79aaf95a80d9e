import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { forget, onCleanup } from './cleanup.ts';
import { reapedChildrenCpuSeconds } from './process-cpu.ts';

/** What one wrk run measured; latencies in milliseconds. */
export interface LoadResult {
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  bytes: number;
  /** Bytes per second, in MB/s (10^6). */
  megabytesPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Connect, read, write and timeout errors, plus responses that were not 2xx or 3xx. */
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  /** CPU seconds wrk itself used (it shares the machine with the server), when measured. */
  generatorCpuSeconds?: number;
}

/** One wrk run: target, concurrency, duration and what each request asks for. */
export interface WrkOptions {
  url: string;
  connections: number;
  threads: number;
  durationSeconds: number;
  /** Lua `request` body generator (see pathGenerator), or undefined for a fixed URL. */
  luaRequest?: string;
  /** Each connection waits this long between its requests (wrk's `delay`): a paced load instead of saturation. */
  pauseMs?: number;
  /**
   * With `pauseMs`: `lockstep` (default) waits the same pause before every request, so the connections,
   * which all start at once, keep asking together (bursts of every connection every pause); `phased`
   * gives each connection a random phase (its first wait is random in 0..pauseMs), so the clients ask
   * independently, each every pauseMs.
   */
  pacing?: 'lockstep' | 'phased';
  headers?: Record<string, string>;
  /** Per-request timeout, seconds (large downloads need more than wrk's 2 s). */
  timeoutSeconds?: number;
  /** Where the generated Lua script is written. */
  workDir: string;
}

const MARK = 'BENCH_RESULT ';

/** Lua that prints wrk's summary as one JSON line, so nothing depends on wrk's human-readable output. */
export function reportLua(): string {
  return `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;
}

/**
 * Lua `request` function asking for `<before><prefix><n, zero-padded to width><after>` with n uniformly
 * random in 1..count; the same seed gives the same sequence. Every request is formatted once, at a
 * thread's first request (after wrk has set its headers), so choosing one costs the load generator a
 * table lookup: about what a fixed URL costs it, which keeps its share of a shared CPU the same on
 * both sides of a comparison with a fixed-URL reference.
 */
export function pathGenerator(o: { before: string; prefix: string; width: number; count: number; after: string; seed?: number }): string {
  for (const part of [o.before, o.prefix, o.after]) {
    if (!/^[A-Za-z0-9/._?=&-]*$/.test(part)) throw new Error(`bench: ${JSON.stringify(part)} is not safe in a generated path`);
  }
  if (!Number.isInteger(o.count) || o.count < 1 || !Number.isInteger(o.width) || o.width < 1) throw new Error('bench: bad path generator range');
  return `
math.randomseed(${Math.trunc(o.seed ?? 42)})
local formatted = nil
request = function()
  if formatted == nil then
    formatted = {}
    for n = 1, ${o.count} do
      formatted[n] = wrk.format(nil, string.format('${o.before}${o.prefix}%0${o.width}d${o.after}', n))
    end
  end
  return formatted[math.random(1, ${o.count})]
end
`;
}

/**
 * wrk's `delay` (called before each request of a connection, the first one included; per thread): the
 * pause, or for `phased` a random wait in 0..pauseMs before each connection's first request (the first
 * `connections / threads` calls of a thread), which spreads the connections over the pause for the
 * whole run.
 */
export function pacingLua(pauseMs: number, pacing: 'lockstep' | 'phased', connections: number, threads: number): string {
  if (!Number.isInteger(pauseMs) || pauseMs < 1) throw new Error('bench: bad pause');
  if (pacing === 'lockstep') return `delay = function() return ${pauseMs} end\n`;
  const perThread = Math.ceil(connections / Math.max(1, threads));
  return `local firsts = 0
delay = function()
  if firsts < ${perThread} then
    firsts = firsts + 1
    return math.random(0, ${pauseMs - 1})
  end
  return ${pauseMs}
end
`;
}

/** Parses the JSON line written by reportLua(). */
export function parseWrkOutput(stdout: string): LoadResult {
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  if (!line) throw new Error(`bench: wrk printed no result line:\n${stdout.slice(-2000)}`);
  const r = JSON.parse(line.slice(MARK.length)) as Record<string, number>;
  const seconds = r.duration_us! / 1e6;
  return {
    requests: r.requests!,
    durationSeconds: seconds,
    requestsPerSecond: r.requests! / seconds,
    bytes: r.bytes!,
    megabytesPerSecond: r.bytes! / seconds / 1e6,
    p50Ms: r.p50_us! / 1000,
    p90Ms: r.p90_us! / 1000,
    p99Ms: r.p99_us! / 1000,
    maxMs: r.max_us! / 1000,
    errors: { connect: r.connect!, read: r.read!, write: r.write!, timeout: r.timeout!, status: r.status! },
  };
}

/** Total of every kind of error in a result. */
export function errorCount(r: LoadResult): number {
  return r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout + r.errors.status;
}

/** Runs wrk (argument array, bounded by a timeout) and returns its measurements. */
export async function runWrk(o: WrkOptions): Promise<LoadResult> {
  const url = new URL(o.url);
  if (url.hostname !== '127.0.0.1') throw new Error(`bench: refusing to load ${o.url}: loopback only`);
  const script = join(o.workDir, `wrk-${process.hrtime.bigint()}.lua`);
  const pause = o.pauseMs === undefined ? '' : pacingLua(Math.trunc(o.pauseMs), o.pacing ?? 'lockstep', o.connections, o.threads);
  writeFileSync(script, `${o.luaRequest ?? ''}\n${pause}${reportLua()}`);
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.durationSeconds}s`, '-s', script];
  args.push('--timeout', `${o.timeoutSeconds ?? 10}s`);
  for (const [name, value] of Object.entries(o.headers ?? {})) args.push('-H', `${name}: ${value}`);
  args.push(o.url);
  let stop: (() => Promise<void>) | undefined;
  const cpuBefore = reapedChildrenCpuSeconds();
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile('wrk', args, { timeout: (o.durationSeconds + 60) * 1000, maxBuffer: 16 * 1024 * 1024 }, (err, out, errOut) => {
      if (err) reject(new Error(`bench: wrk failed: ${err.message}\n${errOut}`));
      else resolve(out);
    });
    stop = onCleanup('wrk', () => void child.kill('SIGKILL'));
  }).finally(() => forget(stop));
  return { ...parseWrkOutput(stdout), generatorCpuSeconds: reapedChildrenCpuSeconds() - cpuBefore };
}
