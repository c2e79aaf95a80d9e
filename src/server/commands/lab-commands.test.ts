import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { labSkipReason } from '../../registration/lab/lab-requirements.ts';
import { runMetal } from '../../../test/support/server-process.ts';

describe('metal lab', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-lab-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const rejected: Array<[string, string[], RegExp]> = [
    ['a serial that is not a service tag', ['--serial', 'x;reboot'], /--serial "x;reboot" is invalid/],
    ['a malformed MAC', ['--serial', 'A1', '--mac', 'zz:54:00:12:34:56'], /--mac "zz:54:00:12:34:56" is invalid/],
    ['memory that is not a number', ['--serial', 'A1', '--memory', '1G'], /--memory "1G" is invalid/],
    ['a timeout of 0', ['--serial', 'A1', '--timeout', '0'], /--timeout "0" is invalid/],
  ];
  for (const [rule, args, message] of rejected) {
    test(`boot rejects ${rule} before starting anything`, async () => {
      const { code, stderr } = await runMetal(['lab', 'boot', ...args], { METAL_BOOT_LISTEN: '127.0.0.1:1' });
      assert.equal(code, 1);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /lab: booting/);
    });
  }

  test('boot without --serial names the missing option', async () => {
    const { code, stderr } = await runMetal(['lab', 'boot']);
    assert.equal(code, 1);
    assert.match(stderr, /required option '--serial <tag>' not specified/);
  });

  test('image writes the registration image into --images-dir', { skip: labSkipReason() }, async () => {
    const imagesDir = join(dir, 'images');
    const { code, stdout, stderr } = await runMetal(['lab', 'image', '--images-dir', imagesDir]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /lab: registration image for kernel .*-cloud-amd64 in .*images\/registration/);
    assert.deepEqual(readdirSync(join(imagesDir, 'registration')).sort(), ['boot.json', 'bzImage', 'initrd']);
    const bootJson = JSON.parse(readFileSync(join(imagesDir, 'registration', 'boot.json'), 'utf8'));
    assert.equal(bootJson.files.initrd.size, readFileSync(join(imagesDir, 'registration', 'initrd')).length);
  });

  test('image with a missing agent fails with the path and publishes nothing', async () => {
    const imagesDir = join(dir, 'no-agent');
    const { code, stderr } = await runMetal(['lab', 'image', '--images-dir', imagesDir, '--agent', join(dir, 'nope.sh')]);
    assert.equal(code, 1);
    assert.match(stderr, /(cannot read the registration agent .*nope\.sh|lab: no )/);
    assert.equal(existsSync(join(imagesDir, 'registration')), false);
  });
});
