import type { Command } from 'commander';
import { registerBuildCommands } from './build-commands.ts';
import { registerCompletionCommands } from './completion-commands.ts';
import { registerEventCommands } from './event-commands.ts';
import { registerFleetCommands } from './fleet-commands.ts';
import { registerInventoryCommands } from './inventory-commands.ts';
import { registerLoginCommands } from './login-commands.ts';
import { registerMachineCommands } from './machine-commands.ts';
import { registerPowerCommands } from './power-commands.ts';
import { registerRolloutCommands } from './rollout-commands.ts';
import { registerTokenCommands } from './token-commands.ts';
import { registerUsersCommands } from './users-commands.ts';
import { registerWebhookCommands } from './webhook-commands.ts';

/** The client commands: they talk to the REST API only (METAL_URL/METAL_TOKEN or what `metal login` saved). */
export function registerClientCommands(program: Command): void {
  const before = new Set(program.commands);
  registerLoginCommands(program);
  registerMachineCommands(program);
  registerBuildCommands(program);
  registerFleetCommands(program);
  registerPowerCommands(program);
  registerRolloutCommands(program);
  registerInventoryCommands(program);
  registerTokenCommands(program);
  registerUsersCommands(program);
  registerEventCommands(program);
  registerWebhookCommands(program);
  registerCompletionCommands(program);
  for (const cmd of program.commands) if (!before.has(cmd)) cmd.hook('preAction', quietOnClosedPipe);
}

/** `metal inventory | head` is not an error: a reader that stops early ends the command quietly. */
function quietOnClosedPipe(): void {
  if (process.stdout.listenerCount('error') > 0) return;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
