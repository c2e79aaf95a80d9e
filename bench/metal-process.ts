import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.ts';

const METAL_BIN = fileURLToPath(new URL('../bin/metal.js', import.meta.url));

/** How to start a server under test. */
export interface MetalProcessOptions {
  /** `serve`, `boot` or `builder`, plus extra arguments, e.g. `['serve', '--roles', 'api']`. */
  args: string[];
  /** Another entry script to run instead of bin/metal.js (a .ts file runs through tsx). */
  script?: string;
  /** METAL_* settings; merged over a loopback-only base. */
  env: Record<string, string>;
  /** Directory for a V8 CPU profile (`node --cpu-prof`), written when the process exits. */
  cpuProfileDir?: string;
  /** How long to wait for `metal: ready`. */
  startTimeoutMs?: number;
}

/** A `metal` server running as a child process, so that the load generator never shares its event loop. */
export interface MetalProcess {
  pid: number;
  /** Bound addresses by role, e.g. `{ boot: 'http://127.0.0.1:41234' }`. */
  addresses: Record<string, string>;
  /** The last lines the process printed, for error messages. */
  recentOutput(): string;
  stop(): Promise<void>;
}

/** Starts `node bin/metal.js …` and resolves once it logged `metal: ready` with its addresses. */
export async function startMetal(options: MetalProcessOptions): Promise<MetalProcess> {
  const nodeArgs = options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : [];
  const script = options.script ?? METAL_BIN;
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const passed = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('NIX_')));
  const child = spawn(process.execPath, [...nodeArgs, ...loader, script, ...options.args], {
    env: {
      ...passed,
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_LOG_LEVEL: 'info',
      METAL_BUILD_UNSANDBOXED: '1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const recent: string[] = [];
  const remember = (line: string) => {
    recent.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
    if (recent.length > 30) recent.shift();
  };
  createInterface({ input: child.stderr! }).on('line', remember);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = onCleanup(`metal ${options.args.join(' ')}`, () => stopChild(child, exited));
  const addresses = await new Promise<Record<string, string>>((resolve, reject) => {
    const timeout = setTimeout(
      () => reject(new Error(`bench: metal ${options.args.join(' ')} not ready after ${options.startTimeoutMs ?? 30_000} ms:\n${recent.join('\n')}`)),
      options.startTimeoutMs ?? 30_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      if (!line.includes('metal: ready')) return;
      try {
        const parsed = JSON.parse(line) as { addresses?: Record<string, string> };
        clearTimeout(timeout);
        resolve(parsed.addresses ?? {});
      } catch {
        // Not a JSON log line; keep reading.
      }
    });
    void exited.then((code) => {
      clearTimeout(timeout);
      reject(new Error(`bench: metal ${options.args.join(' ')} exited with ${code} before it was ready:\n${recent.join('\n')}`));
    });
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { pid: child.pid!, addresses, recentOutput: () => recent.join('\n'), stop };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status), or undefined once it is gone. */
export function residentBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's resident memory every `intervalMs` until stopped; returns the peak and the samples. */
export function sampleResidentMemory(pid: number, intervalMs = 100): () => { peak: number; samples: number[] } {
  const samples: number[] = [];
  const take = () => {
    const rss = residentBytes(pid);
    if (rss !== undefined) samples.push(rss);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return () => {
    clearInterval(timer);
    take();
    return { peak: Math.max(0, ...samples), samples };
  };
}
