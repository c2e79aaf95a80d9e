import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { findExecutable } from '../core/executables.ts';

export { findExecutable };

/**
 * The only module that runs Nix tools. Every call takes an argument array (never a shell string), runs
 * with a timeout, and has its output captured.
 */

/**
 * Nix settings for tests on a host without network or /etc/nix/nix.conf: root without a daemon or build
 * users, no binary caches, no sandbox (the stand-in entries call host tools). The product never applies
 * them itself: nix-build runs with the host's Nix configuration (binary caches on), see docs/builder.md.
 */
export const OFFLINE_NIX_CONFIG = 'build-users-group =\nsubstituters =\nsandbox = false';

/** Milliseconds between SIGTERM and SIGKILL when stopping nix-build. */
const KILL_GRACE_MS = 5000;

export interface NixBuildRequest {
  /** The entry expression, e.g. `/srv/metal/nix/netboot.nix`. */
  entry: string;
  /** The generated `configuration.nix`. */
  configurationFile: string;
  hostname: string;
  serviceTag: string;
  /** Where nix-build puts the result link, e.g. `<work dir>/result`. */
  outLink: string;
  timeoutMs: number;
  /** Aborting stops nix-build (cancel, shutdown, lost lease). */
  signal?: AbortSignal;
  /** Receives stdout and stderr as they arrive. */
  onOutput(chunk: string): void;
  /** Extra environment for the child (tests use it for stand-in entries). */
  env?: Record<string, string>;
  /** METAL_NIXPKGS; undefined: `<nixpkgs>` from NIX_PATH. */
  nixpkgs?: NixpkgsPin;
  /** METAL_CONSOLE, passed as the `consoles` argument, e.g. `['tty0', 'ttyS1,115200']`. */
  consoles?: string[];
  /** Where builds run: in the Nix daemon's sandbox, or in this process's user without one. */
  isolation?: BuildIsolation;
  /**
   * More paths evaluation may read, for entries the server's admin runs (the registration image reads
   * its agent from src/); never anything a machine's configuration chooses.
   */
  readablePaths?: string[];
}

/**
 * How a build is kept from the host: `daemon` builds go through the host's Nix daemon (sandboxed,
 * as its build users); `unsandboxed` builds run nix-build here as this user (METAL_BUILD_UNSANDBOXED).
 */
export type BuildIsolation = 'daemon' | 'unsandboxed';

/** The Nix daemon's socket on a multi-user Nix install (NixOS, the Nix installer's daemon mode). */
export const NIX_DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

/** Whether a Nix daemon can take this host's builds. */
export function hasNixDaemon(env: NodeJS.ProcessEnv = process.env, socket = NIX_DAEMON_SOCKET): boolean {
  return env.NIX_REMOTE === 'daemon' || existsSync(socket);
}

/**
 * Evaluation limits every build runs with, whatever the host's Nix configuration says: only the
 * entry's directory, the build's workspace, and the nixpkgs in use (METAL_NIXPKGS or NIX_PATH) are
 * readable; no import from derivation (nothing is built, so nothing runs, while evaluating); no
 * native code (`builtins.exec`); a pinned tarball is the only URL that may be fetched.
 */
export function evaluationLimitArgs(req: Pick<NixBuildRequest, 'entry' | 'configurationFile' | 'nixpkgs' | 'readablePaths'>): string[] {
  return [
    '--option', 'restrict-eval', 'true',
    '--option', 'allow-import-from-derivation', 'false',
    '--option', 'allow-unsafe-native-code-during-evaluation', 'false',
    '--option', 'allowed-uris', req.nixpkgs?.kind === 'tarball' ? req.nixpkgs.url : '',
    '-I', `metal-entry=${dirname(req.entry)}`,
    '-I', `metal-workspace=${dirname(req.configurationFile)}`,
    ...(req.readablePaths ?? []).flatMap((path, i) => ['-I', `metal-readable-${i}=${path}`]),
  ];
}

/** Where nixpkgs comes from: a tree on this host, or a tarball pinned by its hash. */
export type NixpkgsPin = { kind: 'path'; path: string } | { kind: 'tarball'; url: string; sha256: string };

export interface NixBuildResult {
  outcome: 'success' | 'failed' | 'timeout' | 'aborted';
  exitCode: number | null;
  /** The last `error:` line nix-build printed, without colours. */
  lastError: string | undefined;
}

/**
 * The argument array of the Nix entry interface, exactly as the contract states it, then the optional
 * arguments (an entry without them ignores them: nix-build passes only the arguments a function names).
 */
export function nixBuildArgs(
  req: Pick<NixBuildRequest, 'entry' | 'configurationFile' | 'hostname' | 'serviceTag' | 'outLink' | 'nixpkgs' | 'consoles'>,
): string[] {
  return [
    req.entry,
    '--arg', 'configuration', req.configurationFile,
    '--argstr', 'hostname', req.hostname,
    '--argstr', 'serviceTag', req.serviceTag,
    '-o', req.outLink,
    ...(req.consoles && req.consoles.length > 0 ? ['--argstr', 'consoles', req.consoles.join(' ')] : []),
    ...nixpkgsArgs(req.nixpkgs),
  ];
}

/** A tree becomes `<nixpkgs>` (for the entry and any module that names it); a tarball goes to the entry with its hash. */
export function nixpkgsArgs(pin: NixpkgsPin | undefined): string[] {
  if (pin === undefined) return [];
  if (pin.kind === 'path') return ['-I', `nixpkgs=${pin.path}`];
  return ['--argstr', 'nixpkgsUrl', pin.url, '--argstr', 'nixpkgsSha256', pin.sha256];
}

/** One line for a build log saying which nixpkgs a build uses. */
export function describeNixpkgs(pin: NixpkgsPin | undefined): string {
  if (pin === undefined) return '<nixpkgs> from NIX_PATH (METAL_NIXPKGS is not set)';
  return pin.kind === 'path' ? `${pin.path} (METAL_NIXPKGS)` : `${pin.url} sha256 ${pin.sha256} (METAL_NIXPKGS)`;
}

/** The host's environment, so nix-build keeps the host's Nix configuration (NIX_CONFIG, NIX_PATH, nix.conf). */
function nixEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}

/**
 * Runs nix-build in its own process group. Under `setpriv --pdeathsig` (util-linux) when available, so
 * nix-build is told to stop when this process dies, even by SIGKILL.
 */
export function runNixBuild(req: NixBuildRequest): Promise<NixBuildResult> {
  const args = [...nixBuildArgs(req), ...evaluationLimitArgs(req)];
  if (!findExecutable('nix-build')) {
    return Promise.reject(new Error('nix-build is not installed or not on PATH (see docs/builder.md)'));
  }
  const setpriv = findExecutable('setpriv');
  const [command, argv] = setpriv
    ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', 'nix-build', ...args]]
    : ['nix-build', args];
  return new Promise((resolve, reject) => {
    if (req.signal?.aborted) {
      resolve({ outcome: 'aborted', exitCode: null, lastError: undefined });
      return;
    }
    const env = nixEnv({ ...(req.isolation === 'daemon' ? { NIX_REMOTE: 'daemon' } : {}), ...req.env });
    const child = spawn(command, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    let lastError: string | undefined;
    let stopping: 'timeout' | 'aborted' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const partial = { stdout: '', stderr: '' };
    const scan = (stream: 'stdout' | 'stderr', text: string, flush = false) => {
      const lines = (partial[stream] + text).split('\n');
      partial[stream] = flush ? '' : (lines.pop() ?? '');
      for (const line of lines) {
        const plain = stripAnsi(line).trim();
        if (plain.startsWith('error:')) lastError = plain;
      }
    };
    const onData = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      scan(stream, text);
      req.onOutput(text);
    };
    child.stdout.on('data', onData('stdout'));
    child.stderr.on('data', onData('stderr'));

    const stop = (why: 'timeout' | 'aborted') => {
      if (stopping || child.exitCode !== null || child.signalCode !== null) return;
      stopping = why;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => stop('timeout'), req.timeoutMs);
    const onAbort = () => stop('aborted');
    req.signal?.addEventListener('abort', onAbort, { once: true });

    child.on('error', (err) => {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      reject(new Error(`cannot run nix-build: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      req.signal?.removeEventListener('abort', onAbort);
      scan('stdout', '', true);
      scan('stderr', '', true);
      const outcome = stopping ?? (code === 0 ? 'success' : 'failed');
      resolve({ outcome, exitCode: code, lastError });
    });
  });
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Checks a Nix file's syntax with `nix-instantiate --parse`; rejects with Nix's message. */
export function parseNixFile(file: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nix-instantiate', ['--parse', file], { stdio: ['ignore', 'ignore', 'pipe'], env: nixEnv(), timeout: timeoutMs });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', (err) => reject(new Error(`builder: cannot run nix-instantiate: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`builder: nix-instantiate --parse ${file} failed (${signal ?? code}): ${stripAnsi(stderr).trim()}`));
    });
  });
}

/** Removes terminal colour codes Nix puts on its messages. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}
