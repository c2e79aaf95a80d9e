import { spawn } from 'node:child_process';
import { describeAddress, type BmcAddress, type BmcPassword } from '../bmc-target.ts';
import { PowerError, trimAnswer } from '../power-error.ts';

/**
 * The only module that runs ipmitool. Arguments are an array (never a shell string), every run has a
 * timeout, output is captured, and the password travels in the child's environment (`-E`, read from
 * IPMI_PASSWORD), so it never appears on a command line.
 */

/** IPMI 2.0 (RMCP+) with cipher suite 3 (HMAC-SHA1, AES-128): what nearly every BMC accepts. */
const INTERFACE_ARGS = ['-I', 'lanplus', '-C', '3'];
/** ipmitool's own per-try timeout (seconds) and retries; the caller's deadline still bounds the whole run. */
const SESSION_ARGS = ['-N', '2', '-R', '2'];
/** IPMI user names are at most 16 bytes (IPMI 2.0 spec, 22.29). */
const USERNAME = /^[\x21-\x7e][\x20-\x7e]{0,15}$/;
/** A finished run's output is cut here, so a misbehaving tool cannot fill memory. */
const MAX_OUTPUT = 64 * 1024;

export interface IpmitoolRequest {
  address: BmcAddress;
  username: string;
  password: BmcPassword;
  /** The command after the session options, e.g. `['chassis', 'power', 'status']`. */
  command: readonly string[];
  /** Hard limit for the run; the child is killed when it is reached. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Defaults to `ipmitool` on PATH. */
  executable?: string;
}

export interface IpmitoolOutput {
  stdout: string;
  stderr: string;
}

/** Stderr lines ipmitool prints in verbose mode whatever happens; they are not the BMC's answer. */
const NOISE = [/^Loading IANA PEN Registry/i, /^Running Get VSO Capabilities/i, /^Discovered IPMB address/i, /^Invalid completion code received: Invalid command$/i];
const AUTH_FAILED = [/RAKP 2 HMAC is invalid/i, /unauthorized name/i, /RAKP \d message indicates an error/i, /insufficient privilege/i, /invalid user name/i, /Activate Session error/i, /invalid password/i];
const NO_ANSWER = [/Get Auth Capabilities error/i, /Error issuing Get Channel Authentication Capabilities/i, /Address lookup for .* failed/i, /No response from remote controller/i];

/** The full argument array for one run (exported for tests: it must never hold the password). */
export function ipmitoolArgs(req: Pick<IpmitoolRequest, 'address' | 'username' | 'command'>): string[] {
  if (!USERNAME.test(req.username)) {
    throw new PowerError('auth_failed', 'ipmi: the user name must be 1 to 16 printable ASCII characters');
  }
  return [...INTERFACE_ARGS, '-H', req.address.host, '-p', String(req.address.port), '-U', req.username, '-E', ...SESSION_ARGS, '-v', ...req.command];
}

/** Runs ipmitool once. Resolves with its output on exit status 0; otherwise throws a classified PowerError. */
export function runIpmitool(req: IpmitoolRequest): Promise<IpmitoolOutput> {
  const args = ipmitoolArgs(req);
  const target = describeAddress(req.address);
  return new Promise((resolve, reject) => {
    if (req.signal?.aborted) {
      reject(new PowerError('timeout', `ipmi: no answer from ${target} in time`));
      return;
    }
    const child = spawn(req.executable ?? 'ipmitool', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Only what ipmitool needs: no server secrets are inherited.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', IPMI_PASSWORD: req.password.reveal() },
    });
    let stdout = '';
    let stderr = '';
    let stoppedFor: 'timeout' | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += chunk.toString('utf8');
    });
    const stop = () => {
      stoppedFor = 'timeout';
      child.kill('SIGKILL');
    };
    const timer = setTimeout(stop, req.timeoutMs);
    req.signal?.addEventListener('abort', stop, { once: true });
    const finish = () => {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', stop);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish();
      reject(err.code === 'ENOENT' ? new Error('ipmi: ipmitool is not installed or not on PATH (Debian package ipmitool)') : err);
    });
    child.on('close', (code) => {
      finish();
      if (stoppedFor === 'timeout') {
        reject(new PowerError('timeout', `ipmi: no answer from ${target} in time`));
      } else if (code === 0) {
        resolve({ stdout, stderr });
      } else {
        reject(classifyIpmitoolFailure(target, stdout, stderr));
      }
    });
  });
}

/** Turns a failed run's output into a PowerError that names the BMC's answer. */
export function classifyIpmitoolFailure(target: string, stdout: string, stderr: string): PowerError {
  const lines = `${stderr}\n${stdout}`
    .split('\n')
    .map((l) => l.replace(/^>\s*/, '').trim())
    .filter((l) => l !== '' && !NOISE.some((re) => re.test(l)));
  const find = (patterns: RegExp[]) => lines.find((l) => patterns.some((re) => re.test(l)));
  const auth = find(AUTH_FAILED);
  if (auth) {
    return new PowerError('auth_failed', `ipmi: ${target} refused the user name or password (${trimAnswer(auth)})`, trimAnswer(auth));
  }
  const silent = find(NO_ANSWER);
  if (silent) {
    return new PowerError('unreachable', `ipmi: no IPMI answer from ${target} (${trimAnswer(silent)})`, trimAnswer(silent));
  }
  const failed = lines.find((l) => /failed|error/i.test(l) && !/^Error: Unable to establish/i.test(l)) ?? lines.at(-1) ?? 'no output';
  if (/Unable to establish IPMI v2/i.test(failed)) {
    return new PowerError('unreachable', `ipmi: could not open a session with ${target} (${trimAnswer(failed)})`, trimAnswer(failed));
  }
  return new PowerError('refused', `ipmi: ${target} answered: ${trimAnswer(failed)}`, trimAnswer(failed));
}
