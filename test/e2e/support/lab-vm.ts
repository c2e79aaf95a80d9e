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
}

/**
 * Boots a lab VM until it powers off (bounded by `timeoutMs`), keeping its serial console in
 * `<CONSOLE_LOG_DIR>/<name>.log`. Throws, with the console's tail, unless QEMU exited 0 in time.
 */
export async function bootVm(name: string, input: LabMachineInput, options: { timeoutMs: number; diskFile?: string; network?: { netns: string; tap: string; uefiHttpBoot?: boolean } }): Promise<VmBoot> {
  const machine = parseLabMachine(input);
  mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
  const logFile = join(CONSOLE_LOG_DIR, `${name}.log`);
  const result = await runLabMachine(machine, { console: { logFile }, timeoutMs: options.timeoutMs, diskFile: options.diskFile, network: options.network });
  const consoleText = readFileSync(logFile, 'utf8');
  if (result.timedOut || result.exitCode !== 0) {
    const why = result.timedOut ? `was killed after ${options.timeoutMs} ms` : `exited with ${result.exitCode ?? result.signal}`;
    throw new Error(`e2e: VM ${name} ${why}${result.stderr ? `; qemu: ${result.stderr.trim()}` : ''}\n${consoleTail(consoleText)}`);
  }
  return { machine, result, console: consoleText, logFile };
}

/** The last lines of a console, for failure messages. */
export function consoleTail(text: string, lines = 40): string {
  return `--- console (last ${lines} lines) ---\n${text.split('\n').slice(-lines).join('\n')}\n---`;
}
