import { InvalidArgumentError, type Command } from 'commander';

/** Prints a value exactly as the API gave it, as JSON for `jq`. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Prints lines on standard output. */
export function printLines(lines: string[]): void {
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
}

/** Adds an `Examples:` section to a command's `--help`. */
export function withExamples(cmd: Command, ...examples: string[]): Command {
  return cmd.addHelpText('after', `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  ${e}`).join('\n')}`);
}

/** Parses a positive integer argument (a build or token id), or throws naming the argument. */
export function positiveInteger(name: string) {
  return (value: string): number => {
    if (!/^[1-9][0-9]{0,15}$/.test(value)) throw new InvalidArgumentError(`${name} must be a positive whole number, not ${JSON.stringify(value)}`);
    return Number(value);
  };
}
