import { spawn } from 'node:child_process';

/** How a tool run by a test ended. */
export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one external program with an argument array (never a shell) and a hard time limit; the
 * result carries its output whatever the exit code.
 */
export function runTool(program: string, args: readonly string[], options: { timeoutMs: number; input?: string; env?: NodeJS.ProcessEnv }): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], timeout: options.timeoutMs, killSignal: 'SIGKILL', env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => reject(new Error(`${program}: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (signal === 'SIGKILL') stderr += `\n(killed after ${options.timeoutMs} ms)`;
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      // A program that exits before reading its input is not an error of ours.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
  });
}
