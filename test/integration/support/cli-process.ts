import { spawn } from 'node:child_process';

const METAL_BIN = new URL('../../../bin/metal.js', import.meta.url).pathname;

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
export function startCli(args: string[], env: Record<string, string>, options: { input?: string; timeoutMs?: number } = {}): RunningCli {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('METAL_') && key !== 'XDG_CONFIG_HOME' && key !== 'NO_COLOR'));
  const child = spawn(process.execPath, [METAL_BIN, ...args], { env: { ...inherited, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const check of watchers) check();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(options.input ?? '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const finished = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`metal ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
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
          (r) => reject(new Error(`metal ${args.join(' ')} ended (${r.code}) before printing ${pattern}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)),
          reject,
        );
      });
    },
  };
}
