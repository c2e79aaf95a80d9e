import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { NewcArchive } from './newc-archive.ts';
import { readNewc } from './newc-reader.ts';

describe('NewcArchive', () => {
  test('writes files, symlinks, devices and their parent directories, all owned by root', () => {
    const archive = new NewcArchive()
      .addFile('/etc/metal/modules', 'a\nb\n')
      .addSymlink('bin/sh', '/bin/busybox')
      .addCharDevice('dev/console', 5, 1)
      .addFile('init', '#!/bin/sh\n', 0o755);
    const entries = readNewc(gunzipSync(archive.toGzip()));
    assert.deepEqual(entries.map((e) => e.name), ['etc', 'etc/metal', 'etc/metal/modules', 'bin', 'bin/sh', 'dev', 'dev/console', 'init']);
    const byName = new Map(entries.map((e) => [e.name, e]));
    assert.equal(byName.get('etc/metal/modules')!.data.toString(), 'a\nb\n');
    assert.equal(byName.get('etc/metal/modules')!.mode, 0o100644);
    assert.equal(byName.get('init')!.mode, 0o100755);
    assert.equal(byName.get('bin/sh')!.mode, 0o120777);
    assert.equal(byName.get('bin/sh')!.data.toString(), '/bin/busybox');
    assert.equal(byName.get('etc')!.mode, 0o040755);
    assert.equal(byName.get('dev/console')!.mode, 0o020600);
    assert.deepEqual(byName.get('dev/console')!.rdev, [5, 1]);
    for (const e of entries) assert.deepEqual([e.uid, e.gid], [0, 0]);
  });

  test('a later file replaces an earlier one of the same path; a directory added twice stays once', () => {
    const archive = new NewcArchive().addDirectory('tmp', 0o1777).addDirectory('tmp').addFile('x', 'old').addFile('x', 'new');
    const entries = readNewc(archive.toCpio());
    assert.deepEqual(entries.map((e) => [e.name, e.data.toString()]), [['tmp', ''], ['x', 'new']]);
    assert.equal(entries[0]!.mode, 0o041777);
  });

  const badPaths: Array<[string, string]> = [
    ['a parent reference', '../etc/passwd'],
    ['an inner parent reference', 'lib/../../x'],
    ['an empty path', '/'],
    ['an empty component', 'a//b'],
    ['a NUL byte', 'a\0b'],
  ];
  for (const [rule, path] of badPaths) {
    test(`rejects ${rule}`, () => {
      assert.throws(() => new NewcArchive().addFile(path, 'x'), /initrd: invalid archive path/);
    });
  }
});
