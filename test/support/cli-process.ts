import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';

const METAL_BIN = new URL('../../bin/metal.js', import.meta.url).pathname;

/** How a `metal` command ended and what it printed. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `metal` command line as a child process with exactly the given client environment
 * (no METAL_URL, METAL_TOKEN or XDG_CONFIG_HOME inherited), and kills it if it runs past the timeout.
 */
export function runCli(args: string[], env: Record<string, string>, options: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return startCli(args, env, options).finished;
}

/** A `metal` command still running: its output so far, a way to await a line, and its result. */
export interface RunningCli {
  output(): CliResult;
  /** Resolves once standard output matches (rejects if the command ends first). */
  waitForStdout(pattern: RegExp): Promise<void>;
  finished: Promise<CliResult>;
}

/** Starts `metal <args>` like runCli, returning before it ends. */
export function startCli(
  args: string[],
  env: Record<string, string>,
  options: { input?: string; timeoutMs?: number; command?: string[]; keepStdinOpen?: (stdin: Writable) => void } = {},
): RunningCli {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('METAL_') && key !== 'XDG_CONFIG_HOME' && key !== 'NO_COLOR'));
  const [file, ...argv] = options.command ?? [process.execPath, METAL_BIN, ...args];
  const label = options.command ? options.command.join(' ') : `metal ${args.join(' ')}`;
  const child = spawn(file!, argv, { env: { ...inherited, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const check of watchers) check();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  if (options.keepStdinOpen) options.keepStdinOpen(child.stdin);
  else child.stdin.end(options.input ?? '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const finished = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return {
    output: () => ({ code: child.exitCode, stdout, stderr }),
    finished,
    waitForStdout(pattern) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(stdout)) {
            watchers.delete(check);
            resolve();
          }
        };
        watchers.add(check);
        check();
        finished.then(
          (r) => reject(new Error(`${label} ended (${r.code}) before printing ${pattern}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)),
          reject,
        );
      });
    },
  };
}

/** Quotes a word for `sh -c` (test-controlled values only: paths and loopback URLs). */
function shellWord(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Where util-linux `script` is, to run a command on a pseudo-terminal; outside CI its absence skips loudly. */
export function findScript(): string | undefined {
  const found = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
  if (!found) {
    if (process.env.CI === 'true') throw new Error('script (util-linux) is required in CI for the terminal tests');
    console.warn('\n*** SKIPPING the terminal tests of metal: `script` (util-linux) is not installed ***\n');
  }
  return found;
}

/**
 * Runs `metal <args>` on a pseudo-terminal through `script`, so it sees a TTY on stdin, stdout and stderr.
 * Standard input is written to the terminal only when it is asked for (see RunningCli.waitForStdout).
 */
export function startCliOnTerminal(script: string, args: string[], env: Record<string, string>, options: { timeoutMs?: number } = {}): RunningCli & { type(text: string): void } {
  const command = [process.execPath, METAL_BIN, ...args].map(shellWord).join(' ');
  let stdin: Writable | undefined;
  const running = startCli([], env, { ...options, command: [script, '-qec', command, '/dev/null'], keepStdinOpen: (s) => (stdin = s) });
  return { ...running, type: (text) => stdin?.write(text) };
}
