import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CONFIG_KEYS, loadConfig } from '../../src/config/config.ts';
import { findExecutable } from '../../src/builder/nix-build.ts';

const SYSTEMD_DIR = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url));
const METAL_BIN = fileURLToPath(new URL('../../bin/metal.js', import.meta.url));

function systemdSkipReason(): string | undefined {
  if (findExecutable('systemd-analyze')) return undefined;
  const reason = 'systemd-analyze is not installed (Debian package systemd)';
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING systemd unit checks: ${reason} ***\n`);
  return reason;
}

/** The settings of an environment file, as systemd reads them (KEY=value lines, # comments). */
function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

describe('systemd units (deploy/systemd)', () => {
  const work = mkdtempSync(join(tmpdir(), 'metal-systemd-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const units = readdirSync(SYSTEMD_DIR).filter((f) => f.endsWith('.service'));

  test('the example settings are keys metal knows, with valid values', () => {
    const env = readEnvFile(join(SYSTEMD_DIR, 'metal.env'));
    for (const key of Object.keys(env)) assert.ok((CONFIG_KEYS as readonly string[]).includes(key), key);
    loadConfig(env);
  });

  test('every unit runs a metal command with valid arguments', () => {
    for (const unit of units) {
      const exec = /^ExecStart=\/usr\/local\/bin\/metal (.+)$/m.exec(readFileSync(join(SYSTEMD_DIR, unit), 'utf8'))?.[1];
      assert.ok(exec, `${unit} runs /usr/local/bin/metal`);
      assert.match(exec, /^(serve|serve --roles %i|serve --roles pxe|builder|migrate|backup \/var\/backups\/metal --keep \d+)$/, unit);
    }
    const builder = readFileSync(join(SYSTEMD_DIR, 'metal-builder.service'), 'utf8');
    assert.match(builder, /^User=metal-builder$/m, 'the builder runs as its own user');
    assert.match(builder, /^Environment=NIX_REMOTE=daemon$/m, 'through the Nix daemon');
  });

  test('systemd-analyze verify accepts every unit (metal at this checkout\'s bin/metal.js)', { skip: systemdSkipReason(), timeout: 60_000 }, () => {
    for (const unit of units) {
      const text = readFileSync(join(SYSTEMD_DIR, unit), 'utf8').replaceAll('/usr/local/bin/metal', METAL_BIN);
      writeFileSync(join(work, unit), text);
    }
    copyFileSync(join(SYSTEMD_DIR, 'metal.env'), join(work, 'metal.env'));
    const timers = readdirSync(SYSTEMD_DIR).filter((f) => f.endsWith('.timer'));
    for (const timer of timers) copyFileSync(join(SYSTEMD_DIR, timer), join(work, timer));
    const instances = [...units.map((u) => (u.endsWith('@.service') ? u.replace('@.service', '@api.service') : u)), ...timers];
    const result = spawnSync('systemd-analyze', ['verify', ...instances.map((u) => `./${u}`)], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    assert.equal(result.stderr + result.stdout, '', 'no warnings');
    assert.equal(result.status, 0);
  });

  test('systemd-analyze verify names an unknown key (the check can fail)', { skip: systemdSkipReason(), timeout: 60_000 }, () => {
    writeFileSync(join(work, 'broken.service'), `[Service]\nExecStart=${METAL_BIN} serve\nRestartSecs=2s\n`);
    const result = spawnSync('systemd-analyze', ['verify', './broken.service'], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    assert.match(result.stderr, /Unknown key 'RestartSecs'/);
  });
});
