import { Argument, type Command } from 'commander';
import { bashCompletion, zshCompletion } from './client/completion-script.ts';
import { withExamples } from './client/output.ts';

/** `metal completion bash|zsh`: a completion script generated from the command tree. */
export function registerCompletionCommands(program: Command): void {
  withExamples(
    program.command('completion').description('print a shell completion script').addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh'])),
    'source <(metal completion bash)            # in ~/.bashrc',
    'source <(metal completion zsh)             # in ~/.zshrc, after compinit',
  ).action((shell: 'bash' | 'zsh') => {
    process.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
  });
}
