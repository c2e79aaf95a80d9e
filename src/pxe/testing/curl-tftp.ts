import { runTool, type ToolResult } from './run-tool.ts';

/** Downloads `tftp://host:port/file` with curl into `output`; `blksize` is asked for when given. */
export function curlTftpGet(url: string, output: string, options: { blksize?: number; timeoutMs?: number } = {}): Promise<ToolResult> {
  const args = ['--silent', '--show-error', '--max-time', '60', '--output', output];
  if (options.blksize !== undefined) args.push('--tftp-blksize', String(options.blksize));
  args.push('--', url);
  return runTool('curl', args, { timeoutMs: options.timeoutMs ?? 70_000 });
}
