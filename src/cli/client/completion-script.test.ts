import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerClientCommands } from '../client-commands.ts';
import { bashCompletion, completionNodes, zshCompletion } from './completion-script.ts';

function program(): Command {
  const p = new Command('metal');
  registerClientCommands(p);
  return p;
}

function findShell(name: string): string | undefined {
  const found = ['/bin', '/usr/bin', '/usr/local/bin'].map((d) => join(d, name)).find((p) => existsSync(p));
  if (!found) {
    if (process.env.CI === 'true') throw new Error(`${name} is required in CI`);
    console.warn(`\n*** SKIPPING: ${name} is not installed; the ${name} completion script is not exercised ***\n`);
  }
  return found;
}

describe('shell completion', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-completion-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the tree lists every command with its subcommands and options', () => {
    const nodes = new Map(completionNodes(program()).map((n) => [n.path, n]));
    assert.ok(nodes.get('')!.words.includes('machines'));
    assert.deepEqual(nodes.get('machines')!.words, ['ls', 'show', 'set', 'config', 'label', 'events', 'identity', 'rollback', 'rm', '--help']);
    assert.deepEqual(nodes.get('machines ls')!.values.get('--status'), ['enrolled', 'configured', 'building', 'ready', 'failed']);
    assert.equal(nodes.get('machines set')!.values.get('--config'), null);
  });

  const bash = findShell('bash');
  test('bash completes commands, subcommands, option values and files', { skip: !bash }, () => {
    const script = join(dir, 'metal.bash');
    writeFileSync(script, bashCompletion(program()));
    writeFileSync(join(dir, 'web-01.nix'), '{ }\n');
    const complete = (...words: string[]) =>
      execFileSync(
        bash!,
        ['-c', 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _metal_complete; printf "%s\\n" "${COMPREPLY[@]}"', 'complete', script, 'metal', ...words],
        { cwd: dir, encoding: 'utf8', timeout: 10_000 },
      )
        .split('\n')
        .filter(Boolean);
    assert.deepEqual(complete('mach'), ['machines']);
    assert.deepEqual(complete('machines', ''), ['ls', 'show', 'set', 'config', 'label', 'events', 'identity', 'rollback', 'rm', '--help']);
    assert.deepEqual(complete('machines', 'ls', '--st'), ['--status']);
    assert.deepEqual(complete('machines', 'ls', '--status', 're'), ['ready']);
    assert.deepEqual(complete('machines', 'set', 'ABC', '--config', 'web'), ['web-01.nix']);
    assert.deepEqual(complete('builds', 'logs', '42', '-'), ['--follow', '-f', '--help']);
    assert.deepEqual(complete('completion', ''), ['--help']);
    assert.deepEqual(complete('rollout', 'start', '--reboot', ''), ['power', 'agent', 'none']);
  });

  test('the zsh script offers the same words as the bash one', () => {
    const text = zshCompletion(program());
    assert.match(text, /^#compdef metal$/m);
    assert.match(text, /"machines ls\|--status"\) choices=\(enrolled configured building ready failed\); compadd -a choices; return ;;/);
    assert.match(text, /"machines set\|--config"\) _files; return ;;/);
  });
});
