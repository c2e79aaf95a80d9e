import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingToolsSkipReason } from './host-tools.ts';

/**
 * DMTF's redfishtool (Debian package redfishtool) as an independent Redfish client for tests. Credentials
 * go in a 0600 config file (`-c`), not on its command line.
 */
export interface RedfishtoolTarget {
  port: number;
  username: string;
  password: string;
  auth: 'Basic' | 'Session';
}

/** Why redfishtool cannot run here, or undefined. Loud outside CI, an error in CI. */
export function redfishtoolSkipReason(): string | undefined {
  return missingToolsSkipReason('redfishtool checks', { redfishtool: 'redfishtool' });
}

/** Runs `redfishtool -r 127.0.0.1:PORT -S Always -A AUTH -c CONFIG ...args`; resolves with stdout, rejects with stderr. */
export function runRedfishtool(target: RedfishtoolTarget, args: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'metal-redfishtool-'));
  const config = join(dir, 'credentials.json');
  writeFileSync(config, JSON.stringify({ user: target.username, password: target.password }), { mode: 0o600 });
  return new Promise<string>((resolve, reject) => {
    execFile(
      'redfishtool',
      ['-r', `127.0.0.1:${target.port}`, '-S', 'Always', '-A', target.auth, '-T', '10', '-c', config, ...args],
      { timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONWARNINGS: 'ignore' } },
      (err, stdout, stderr) => {
        rmSync(dir, { recursive: true, force: true });
        if (err) reject(new Error(`redfishtool ${args.join(' ')} failed: ${stderr || err.message}`));
        else resolve(stdout);
      },
    );
  });
}
