import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { CliError } from './api-client.ts';

/** Everything on standard input, as text (for `--password-stdin` and `--config -`). */
export async function readStdin(limitBytes = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw new CliError(`standard input is larger than ${limitBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A file's text, or standard input's for `-`, with a clear error naming the file. */
export async function readTextArgument(path: string, limitBytes: number): Promise<string> {
  if (path === '-') return readStdin(limitBytes);
  try {
    const data = readFileSync(path);
    if (data.length > limitBytes) throw new CliError(`${path} is larger than ${limitBytes} bytes`);
    return data.toString('utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The first line of standard input without its line ending (`--password-stdin`). */
export async function readSecretFromStdin(): Promise<string> {
  const text = await readStdin(64 * 1024);
  const secret = text.split(/\r?\n/)[0] ?? '';
  if (!secret) throw new CliError('no password on standard input');
  return secret;
}

/** Asks for a secret on the terminal without echoing it. */
export function promptSecret(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new CliError('no terminal to ask for the password on: pipe it in with --password-stdin');
  return new Promise((resolve, reject) => {
    let secret = '';
    // Echo goes off before the question shows, so an answer typed the moment it appears is never echoed.
    stdin.setRawMode(true);
    process.stderr.write(question);
    stdin.resume();
    stdin.setEncoding('utf8');
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(secret);
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new CliError('cancelled', 130));
        if (ch === '\u0004') return finish(secret ? undefined : new CliError('no password given'));
        if (ch === '\u007f' || ch === '\b') secret = secret.slice(0, -1);
        else if (ch >= ' ') secret += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Asks a yes/no question on the terminal; anything but y/yes is no. */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
