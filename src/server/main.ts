import { Command, CommanderError } from 'commander';
import { registerServerCommands } from './commands/serve-commands.ts';
import { registerClientCommands } from '../cli/client-commands.ts';
import { registerLabCommands } from './commands/lab-commands.ts';
import { registerImageCommands } from './commands/image-commands.ts';
import { registerUserCommands } from './commands/account-commands.ts';
import { registerHealthcheckCommand } from './commands/healthcheck-command.ts';
import { registerBackupCommands } from './commands/backup-commands.ts';

/** The `metal` command. Server commands run roles; client commands talk to the REST API only. */
export function buildProgram(): Command {
  const program = new Command('metal')
    .description('Metal Enrollment: bare-metal provisioning for NixOS fleets')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', '\nExample:\n  metal serve                      # API on :8080, boot server on :8081, builder, SQLite in ./data');
  registerServerCommands(program);
  registerClientCommands(program);
  registerLabCommands(program);
  registerImageCommands(program);
  registerUserCommands(program);
  registerHealthcheckCommand(program);
  registerBackupCommands(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  console.error(`metal: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
