import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The registration agent script; the registration images copy it from here. */
export const AGENT_SCRIPT_PATH = join(dirname(fileURLToPath(import.meta.url)), 'metal-agent.sh');

/** The fixture trees of /sys and /proc (plus stand-in tools) shaped like real servers. */
export const AGENT_FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Applets left out of a busybox-only PATH, so that nothing run from it can stop the host. */
const DANGEROUS_APPLETS = new Set(['poweroff', 'reboot', 'halt', 'init', 'linuxrc', 'shutdown']);

/** Where busybox is, or undefined; absent outside CI it warns loudly, in CI (`CI=true`) it throws. */
export function findBusybox(): string | undefined {
  const found = (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, 'busybox'))
    .find((p) => existsSync(p));
  if (found) return found;
  if (process.env.CI === 'true') throw new Error('busybox is required in CI (apt-get install busybox-static)');
  console.warn('\n*** SKIPPING registration agent tests: busybox is not installed ***\n');
  return undefined;
}

/** A directory with one symlink per busybox applet: a PATH on which the agent has busybox alone. */
export function makeBusyboxPath(busybox: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'metal-busybox-'));
  const list = spawnSync(busybox, ['--list'], { encoding: 'utf8', timeout: 10_000 });
  if (list.status !== 0) throw new Error(`busybox --list failed: ${list.stderr}`);
  for (const applet of list.stdout.split('\n').filter(Boolean)) {
    if (!DANGEROUS_APPLETS.has(applet) && /^[a-z0-9_.[-]+$/.test(applet)) symlinkSync(busybox, join(dir, applet));
  }
  return dir;
}

/** A directory holding symlinks to the named host tools (those that exist). */
export function makeToolPath(tools: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'metal-tools-'));
  for (const tool of tools) {
    const found = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, tool)).find((p) => existsSync(p));
    if (found) symlinkSync(found, join(dir, tool));
  }
  return dir;
}

/** A writable copy of a fixture tree (symlinks kept as they are), optionally with a new kernel command line. */
export function copyFixture(name: string, cmdline?: string): string {
  const dir = mkdtempSync(join(tmpdir(), `metal-fixture-${name}-`));
  cpSync(join(AGENT_FIXTURES_DIR, name), dir, { recursive: true, verbatimSymlinks: true });
  if (cmdline !== undefined) writeFile(join(dir, 'proc', 'cmdline'), `${cmdline}\n`);
  return dir;
}

/** Writes a file (bytes as given), creating its directory. */
export function writeFile(path: string, content: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface AgentRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AgentRunOptions {
  busybox: string;
  /** METAL_AGENT_ROOT; empty: this machine. */
  root: string;
  /** PATH directories, in order. */
  path: string[];
  args?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  /** The shell to run the script with, e.g. `/bin/bash`; default `busybox sh`. */
  shell?: string;
  /** Leave METAL_AGENT_CONSOLE unset, so the agent writes to the consoles of the tree's kernel line. */
  consoles?: boolean;
}

/** Runs the agent under `busybox sh` or another shell (never powering off) and resolves with its exit code and output. */
export function runAgent(opts: AgentRunOptions): Promise<AgentRun> {
  const env: Record<string, string> = {
    PATH: opts.path.join(delimiter),
    METAL_AGENT_ROOT: opts.root,
    METAL_AGENT_NO_POWEROFF: '1',
    ...(opts.consoles ? {} : { METAL_AGENT_CONSOLE: '' }),
    TMPDIR: tmpdir(),
    ...opts.env,
  };
  return new Promise((resolve, reject) => {
    const [command, argv] = opts.shell ? [opts.shell, [AGENT_SCRIPT_PATH]] : [opts.busybox, ['sh', AGENT_SCRIPT_PATH]];
    execFile(
      command,
      [...argv, ...(opts.args ?? [])],
      { env, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8', maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(new Error(`agent did not finish (${err.signal ?? err.message}): ${stdout}${stderr}`));
          return;
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
  });
}
