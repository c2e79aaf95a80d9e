import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readConfigDirectory, writeConfigDirectory } from './config-directory.ts';

describe('configuration directories', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'metal-cfgdir-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const make = (name: string, files: Record<string, string>) => {
    const dir = join(root, name);
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    return dir;
  };

  test('reads allowed files at the top and one folder down; says what it left out', () => {
    const dir = make('web', {
      'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ./modules/web.nix ]; }\n',
      'hardware.nix': '{ ... }: { }\n',
      'modules/web.nix': '{ ... }: { }\n',
      'modules/deep/too-deep.nix': 'x',
      'README.md': '# notes',
      '.git/config': 'x',
      '.hidden.nix': 'x',
    });
    symlinkSync('hardware.nix', join(dir, 'hw-link.nix'));
    const { files, skipped } = readConfigDirectory(dir);
    assert.deepEqual(Object.keys(files).sort(), ['configuration.nix', 'hardware.nix', 'hw-link.nix', 'modules/web.nix']);
    assert.equal(files['hw-link.nix'], '{ ... }: { }\n', 'a symlink inside the directory is read');
    assert.deepEqual(skipped.map((s) => s.split(' ')[0]), ['README.md', 'modules/deep/']);
  });

  test('refuses a symlink leaving the directory, and a directory without configuration.nix', () => {
    const outside = make('outside', { 'secret.nix': 'root password' });
    const dir = make('leaky', { 'configuration.nix': '{ ... }: { }' });
    symlinkSync(join(outside, 'secret.nix'), join(dir, 'secret.nix'));
    assert.throws(() => readConfigDirectory(dir), /secret\.nix is a symlink to .*outside/);
    const linkedFolder = make('leaky-folder', { 'configuration.nix': '{ ... }: { }' });
    symlinkSync(outside, join(linkedFolder, 'modules'));
    assert.throws(() => readConfigDirectory(linkedFolder), /modules is a symlink to .*outside/);
    assert.throws(() => readConfigDirectory(make('no-entry', { 'hardware.nix': 'x' })), /has no configuration\.nix/);
    assert.throws(() => readConfigDirectory(join(root, 'missing')), /cannot read .*ENOENT/);
  });

  test('export writes each file, replacing older copies; never through a symlink or outside', () => {
    const dir = join(root, 'export');
    const files = { 'configuration.nix': 'c', 'hardware.nix': 'h', 'modules/web.nix': 'w' };
    assert.deepEqual(writeConfigDirectory(dir, files), Object.keys(files));
    writeConfigDirectory(dir, { ...files, 'hardware.nix': 'h2' });
    assert.equal(readFileSync(join(dir, 'hardware.nix'), 'utf8'), 'h2');
    assert.deepEqual(readConfigDirectory(dir).files, { ...files, 'hardware.nix': 'h2' }, 'what is exported reads back the same');
    const target = join(root, 'target.txt');
    writeFileSync(target, 'keep');
    rmSync(join(dir, 'hardware.nix'));
    symlinkSync(target, join(dir, 'hardware.nix'));
    assert.throws(() => writeConfigDirectory(dir, files), /symlink/);
    assert.equal(readFileSync(target, 'utf8'), 'keep');
    assert.throws(() => writeConfigDirectory(dir, { 'configuration.nix': 'c', '../escape.nix': 'x' }), /not allowed/);
  });
});
