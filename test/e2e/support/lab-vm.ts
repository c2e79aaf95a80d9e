import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLabMachine, type LabMachine, type LabMachineInput } from '../../../src/registration/lab/lab-machine.ts';
import { runLabMachine, type LabRunResult } from '../../../src/registration/lab/qemu-runner.ts';

/** Where the consoles of e2e VMs are kept (override with METAL_E2E_LOG_DIR). */
export const CONSOLE_LOG_DIR = process.env.METAL_E2E_LOG_DIR ?? join(process.cwd(), 'test-results', 'e2e');

/** One boot of a lab VM: how it ended and everything its serial console printed. */
export interface VmBoot {
  machine: LabMachine;
  result: LabRunResult;
  console: string;
  logFile: string;
  /** How long QEMU ran, in ms. */
  ranMs: number;
}

/** Options of one boot. `describe` adds what the test knows (e.g. a rollout's state) to a failure. */
export interface BootVmOptions {
  timeoutMs: number;
  diskFile?: string;
  network?: { netns: string; tap: string; uefiHttpBoot?: boolean };
  describe?: () => Promise<string>;
  /**
   * Stop the VM once its console shows this (checked every 250 ms): a boot whose image would go on
   * waiting (a stand-in asking for reboot requests) ends as soon as the test has what it needs.
   */
  stopWhen?: RegExp;
}

/**
 * Boots a lab VM until it powers off (bounded by `timeoutMs`), keeping its serial console in
 * `<CONSOLE_LOG_DIR>/<name>.log`. Throws unless QEMU exited 0 in time; the error starts with the
 * console's key lines (consoleDigest), then `describe()`'s text, then the console's tail.
 */
export async function bootVm(name: string, input: LabMachineInput, options: BootVmOptions): Promise<VmBoot> {
  const machine = parseLabMachine(input);
  mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
  const logFile = join(CONSOLE_LOG_DIR, `${name}.log`);
  const started = Date.now();
  const stop = new AbortController();
  const watcher = options.stopWhen && setInterval(() => {
    if (options.stopWhen!.test(plainConsole(readConsole(logFile)).join('\n'))) stop.abort();
  }, 250);
  let result: LabRunResult;
  try {
    result = await runLabMachine(machine, { console: { logFile }, timeoutMs: options.timeoutMs, diskFile: options.diskFile, network: options.network, signal: stop.signal });
  } finally {
    if (watcher) clearInterval(watcher);
  }
  const ranMs = Date.now() - started;
  const consoleText = readFileSync(logFile, 'utf8');
  const stopped = stop.signal.aborted && !result.timedOut;
  if (!stopped && (result.timedOut || result.exitCode !== 0)) {
    const why = result.timedOut ? `was killed after ${options.timeoutMs} ms` : `exited with ${result.exitCode ?? result.signal} after ${ranMs} ms`;
    const state = options.describe ? await options.describe().catch((err: Error) => `(could not describe the state: ${err.message})`) : '';
    throw new Error(
      [`e2e: VM ${name} ${why}${result.stderr ? `; qemu: ${result.stderr.trim()}` : ''} (console: ${logFile})`, consoleDigest(consoleText), state, consoleTail(consoleText)].filter(Boolean).join('\n'),
    );
  }
  return { machine, result, console: consoleText, logFile, ranMs };
}

/** A console log as far as it is written, '' before QEMU made it. */
function readConsole(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
}

/** A console as plain lines: terminal escapes, carriage returns and iPXE's spinner backspaces removed. */
export function plainConsole(text: string): string[] {
  return text
    .replace(/\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])/g, '') // eslint-disable-line no-control-regex
    .replace(/[^\n]?\x08/g, '') // eslint-disable-line no-control-regex
    .split(/\r?\n|\r/)
    .map((l) => l.trimEnd())
    .filter(Boolean);
}

/**
 * What says where a boot got to, first in a failure message: iPXE's fetches and messages (what it
 * asked the boot server for, `metal:` lines of the boot scripts), the lines of the images'
 * own scripts (`metal-standin:`, `metal-agent:`), the kernel's first and last line and any panic.
 */
export function consoleDigest(text: string): string {
  const lines = plainConsole(text);
  const firstKernel = lines.find((l) => /^\[\s*\d+\.\d+\]/.test(l));
  const lastKernel = lines.findLast((l) => /^\[\s*\d+\.\d+\]/.test(l));
  const key = lines.filter(
    (l) =>
      /^(metal-standin|metal-agent|metal):/.test(l) ||
      /^https?:\/\//.test(l) ||
      /^(Filename:|Configuring|No more network devices|Could not|Connection)/.test(l) ||
      /Kernel panic|Oops|BUG:|soft lockup|hung_task|Run \/init/.test(l),
  );
  const kernel = firstKernel ? [`kernel: ${firstKernel}`, ...(lastKernel && lastKernel !== firstKernel ? [`kernel, last line: ${lastKernel}`] : [])] : ['kernel: never started'];
  const shown = key.length > 60 ? [...key.slice(0, 20), `… ${key.length - 50} lines …`, ...key.slice(-30)] : key;
  return `--- console, key lines (${lines.length} lines in all) ---\n${[...shown, ...kernel].join('\n')}\n---`;
}

/** A console for a failure message: its key lines first (consoleDigest), then its tail. */
export function consoleReport(text: string): string {
  return `${consoleDigest(text)}\n${consoleTail(text)}`;
}

/** The last lines of a console, for failure messages. */
export function consoleTail(text: string, lines = 40): string {
  return `--- console (last ${lines} lines) ---\n${text.split('\n').slice(-lines).join('\n')}\n---`;
}
