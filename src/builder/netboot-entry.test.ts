import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseNixFile } from './nix-build.ts';
import { FIXTURES, nixBuildAvailable } from '../../test/support/builder.ts';

const hasNix = nixBuildAvailable();
const NETBOOT = fileURLToPath(new URL('../../nix/netboot.nix', import.meta.url));

test('nix/netboot.nix and the stand-in entries parse', { skip: !hasNix }, async () => {
  for (const file of [NETBOOT, FIXTURES.ok, FIXTURES.slow, FIXTURES.noBootJson]) await parseNixFile(file);
});

test('parseNixFile reports a syntax error with Nix\'s message', { skip: !hasNix }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-parse-'));
  try {
    const file = join(dir, 'broken.nix');
    writeFileSync(file, '{ a = 1;\n');
    await assert.rejects(parseNixFile(file), /nix-instantiate --parse .*broken\.nix failed \(1\): error: syntax error, unexpected end of file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
