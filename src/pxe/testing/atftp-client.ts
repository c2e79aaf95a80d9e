import { runTool, type ToolResult } from './run-tool.ts';

/**
 * Downloads one file with atftp (`--get`), asking for `blksize` and `tsize` when given; `--trace`
 * output (the packets exchanged) is in stdout/stderr.
 */
export function atftpGet(host: string, port: number, remote: string, local: string, options: { blksize?: number; tsize?: boolean; timeoutMs?: number } = {}): Promise<ToolResult> {
  const args = ['--get', '--remote-file', remote, '--local-file', local, '--trace', '--verbose'];
  if (options.blksize !== undefined) args.push('--option', `blksize ${options.blksize}`);
  if (options.tsize) args.push('--option', 'tsize');
  args.push(host, String(port));
  return runTool('atftp', args, { timeoutMs: options.timeoutMs ?? 70_000 });
}
