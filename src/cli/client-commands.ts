import type { Command } from 'commander';
import { registerBuildCommands } from './build-commands.ts';
import { registerCompletionCommands } from './completion-commands.ts';
import { registerInventoryCommands } from './inventory-commands.ts';
import { registerLoginCommands } from './login-commands.ts';
import { registerMachineCommands } from './machine-commands.ts';
import { registerTokenCommands } from './token-commands.ts';
import { registerUsersCommands } from './users-commands.ts';

/** The client commands: they talk to the REST API only (METAL_URL/METAL_TOKEN or what `metal login` saved). */
export function registerClientCommands(program: Command): void {
  registerLoginCommands(program);
  registerMachineCommands(program);
  registerBuildCommands(program);
  registerInventoryCommands(program);
  registerTokenCommands(program);
  registerUsersCommands(program);
  registerCompletionCommands(program);
}
