import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { registerClientCommands } from './client-commands.ts';

function allCommands(cmd: Command, path = ''): Array<[string, Command]> {
  return cmd.commands.flatMap((sub) => {
    const name = `${path}${sub.name()}`;
    return [[name, sub] as [string, Command], ...allCommands(sub, `${name} `)];
  });
}

function helpOf(cmd: Command): string {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

describe('client command tree', () => {
  const program = new Command('metal');
  registerClientCommands(program);
  const commands = allCommands(program);

  test('every client command shows an example in its --help', () => {
    assert.ok(commands.length >= 20);
    for (const [name, cmd] of commands) assert.match(helpOf(cmd), /\nExamples?:\n {2}(metal|source|printf|export|id=|nix-instantiate)/, `metal ${name} --help`);
  });

  test('every read command takes --json', () => {
    const reads = ['whoami', 'machines ls', 'machines show', 'machines events', 'builds ls', 'builds show', 'builders', 'events', 'tokens ls', 'users ls', 'webhooks ls', 'webhooks deliveries'];
    for (const [name, cmd] of commands.filter(([n]) => reads.includes(n))) {
      assert.ok(cmd.options.some((o) => o.long === '--json'), `metal ${name} --json`);
    }
    assert.equal(commands.filter(([n]) => reads.includes(n)).length, reads.length);
  });
});
