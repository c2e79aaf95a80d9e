import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export const METAL_BIN = new URL('../../bin/metal.js', import.meta.url).pathname;

export interface ServerProcess {
  child: ChildProcess;
  /** Bound addresses by role, from the `metal: ready` log line. */
  addresses: { api?: string; boot?: string };
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
}

/**
 * Runs `metal <args>` (a server command) as a child process and resolves once it logs `metal: ready`.
 * Listeners default to port 0 on 127.0.0.1; enrollment rate limiting is off.
 */
export function startServerProcess(args: string[], env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, [METAL_BIN, ...args], {
    env: {
      ...process.env,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_ENROLL_RATE: '0',
      METAL_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('server did not become ready in 60 s'));
    }, 60_000);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; addresses?: ServerProcess['addresses'] };
        if (entry.msg === 'metal: ready' && entry.addresses) {
          clearTimeout(timer);
          resolve({ child, addresses: entry.addresses, exited });
        }
      } catch {
        // not a log line
      }
    });
  });
}

/** Runs `metal <args>` to completion; resolves with its exit code and output. */
export function runMetal(
  args: string[],
  env: Record<string, string> = {},
  input?: string,
  /** Past this the command is killed and its code is null: a command that hangs fails its test. */
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [METAL_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}
