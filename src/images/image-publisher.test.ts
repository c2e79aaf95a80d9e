import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ImageLayout } from './image-layout.ts';
import { checkBuildResult, pointMachineAt, publishBuildImage, removeStaleStaging, verifyBuildImage } from './image-publisher.ts';

const LOOP = fileURLToPath(new URL('./fixtures/publish-loop.ts', import.meta.url));

function makeResult(dir: string, files: Record<string, string | Buffer>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const GOOD_BOOT_JSON = JSON.stringify({ init: '/nix/store/abc-nixos-system-web-01/init', kernel_params: ['console=ttyS0'] });

describe('image publication', () => {
  let work: string;
  let layout: ImageLayout;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'metal-images-'));
    layout = new ImageLayout(join(work, 'images'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('a result is refused, with one line saying why, unless it has both files and a usable boot.json', async () => {
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['no bzImage', { initrd: 'i', 'boot.json': GOOD_BOOT_JSON }, /^the build result has no bzImage \(expected .*\/bzImage\)$/],
      ['empty initrd', { bzImage: 'k', initrd: '', 'boot.json': GOOD_BOOT_JSON }, /^the build result's initrd is empty$/],
      ['no boot.json', { bzImage: 'k', initrd: 'i' }, /^the build result has no boot\.json \(expected .*\/boot\.json\)$/],
      ['boot.json not JSON', { bzImage: 'k', initrd: 'i', 'boot.json': '{' }, /^the build result's boot\.json is not valid JSON$/],
      ['no init', { bzImage: 'k', initrd: 'i', 'boot.json': '{"kernel_params": []}' }, /^the build result's boot\.json has no init$/],
      ['no kernel_params', { bzImage: 'k', initrd: 'i', 'boot.json': '{"init": "/nix/store/x/init"}' }, /has no kernel_params list$/],
      ['kernel_params with a space', { bzImage: 'k', initrd: 'i', 'boot.json': '{"init": "/x/init", "kernel_params": ["a b"]}' }, /kernel_params 0 has characters/],
      ['kernel_params setting init', { bzImage: 'k', initrd: 'i', 'boot.json': '{"init": "/x/init", "kernel_params": ["init=/bin/sh"]}' }, /sets a parameter the boot server writes itself/],
    ];
    for (const [name, files, expected] of cases) {
      const dir = makeResult(join(work, 'bad', name.replace(/\W/g, '-')), files);
      await assert.rejects(checkBuildResult(dir), (err: Error) => expected.test(err.message) && !err.message.includes('\n'), name);
    }
  });

  test('publish: files, sizes and sha256 in boot.json, read-only, no staging left; a refused result leaves nothing', async () => {
    const result = makeResult(join(work, 'r1'), { bzImage: 'kernel-1', initrd: 'initrd-1', 'boot.json': GOOD_BOOT_JSON });
    const { bootJson, reusedFrom } = await publishBuildImage(layout, { buildId: 1, resultDir: result });
    assert.equal(reusedFrom, undefined);
    assert.deepEqual(bootJson, {
      init: '/nix/store/abc-nixos-system-web-01/init',
      kernel_params: ['console=ttyS0'],
      files: {
        bzImage: { size: 8, sha256: sha256('kernel-1') },
        initrd: { size: 8, sha256: sha256('initrd-1') },
      },
    });
    assert.deepEqual(await verifyBuildImage(layout.buildDir(1)), bootJson);
    assert.equal(statSync(join(layout.buildDir(1), 'bzImage')).mode & 0o777, 0o444);
    assert.deepEqual(readdirSync(layout.buildsDir), ['1']);
    const bad = makeResult(join(work, 'r-bad'), { bzImage: 'k', initrd: 'i' });
    await assert.rejects(publishBuildImage(layout, { buildId: 2, resultDir: bad }), /no boot\.json/);
    assert.deepEqual(readdirSync(layout.buildsDir), ['1']);
  });

  test('the nixpkgs an entry records is published in boot.json, printable strings only', async () => {
    const nixpkgs = { source: '/srv/nixpkgs', sha256: null, version: '24.05.1234.abcdef0', revision: 'abcdef0123456789abcdef0123456789abcdef01' };
    const result = makeResult(join(work, 'r-nixpkgs'), {
      bzImage: 'kernel-n',
      initrd: 'initrd-n',
      'boot.json': JSON.stringify({ ...JSON.parse(GOOD_BOOT_JSON), nixpkgs: { ...nixpkgs, extra: 'dropped', version: '24.05\n<script>' } }),
    });
    const { bootJson } = await publishBuildImage(layout, { buildId: 40, resultDir: result });
    assert.deepEqual(bootJson.nixpkgs, { source: '/srv/nixpkgs', sha256: null, revision: nixpkgs.revision }, 'a version with a newline is left out');
    const plain = makeResult(join(work, 'r-no-nixpkgs'), { bzImage: 'kernel-p', initrd: 'initrd-p', 'boot.json': GOOD_BOOT_JSON });
    assert.equal((await publishBuildImage(layout, { buildId: 41, resultDir: plain })).bootJson.nixpkgs, undefined);
  });

  test('a result already published is linked from the earlier build, not copied', async () => {
    const result = join(work, 'r1');
    const { reusedFrom, bootJson } = await publishBuildImage(layout, { buildId: 3, resultDir: result, reuseBuildId: 1 });
    assert.equal(reusedFrom, 1);
    assert.equal(statSync(join(layout.buildDir(3), 'initrd')).ino, statSync(join(layout.buildDir(1), 'initrd')).ino);
    assert.deepEqual((await verifyBuildImage(layout.buildDir(3))).files, bootJson.files);
    const { reusedFrom: none } = await publishBuildImage(layout, { buildId: 4, resultDir: result, reuseBuildId: 99 });
    assert.equal(none, undefined, 'a missing earlier build falls back to copying');
    await verifyBuildImage(layout.buildDir(4));
  });

  test('the machine link is swapped by rename and removed with null', async () => {
    await pointMachineAt(layout, 'ABC123', 1);
    assert.equal(readlinkSync(layout.machineLink('ABC123')), '../builds/1');
    await pointMachineAt(layout, 'ABC123', 3);
    assert.equal(readlinkSync(layout.machineLink('ABC123')), '../builds/3');
    assert.deepEqual(readdirSync(layout.machinesDir), ['ABC123']);
    await pointMachineAt(layout, 'ABC123', null);
    assert.equal(existsSync(layout.machineLink('ABC123')), false);
    await assert.rejects(pointMachineAt(layout, '../x', 1), /service_tag/);
  });

  test('a publisher killed at random moments never leaves a mixed or truncated image behind a name that is served', async () => {
    const a = makeResult(join(work, 'loop-a'), { bzImage: randomBytes(3 << 20), initrd: randomBytes(1 << 20), 'boot.json': GOOD_BOOT_JSON });
    const b = makeResult(join(work, 'loop-b'), { bzImage: randomBytes(3 << 20), initrd: randomBytes(1 << 20), 'boot.json': GOOD_BOOT_JSON });
    const loopLayout = new ImageLayout(join(work, 'loop-images'));
    const pairs = new Map<string, string>();
    for (const dir of [a, b]) {
      const v = await publishBuildImage(new ImageLayout(join(work, 'reference')), { buildId: dir === a ? 1 : 2, resultDir: dir });
      pairs.set(v.bootJson.files.bzImage.sha256, v.bootJson.files.initrd.sha256);
    }
    let nextId = 1;
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', LOOP, loopLayout.root, a, b, String(nextId)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = once(child, 'exit');
      const killAfter = 1 + Math.floor(Math.random() * 3);
      let seen = 0;
      child.stdout.on('data', (chunk: Buffer) => {
        seen += chunk.toString().trim().split('\n').length;
        if (seen >= killAfter) setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 15));
      });
      await exited;
      const published = readdirSync(loopLayout.buildsDir).filter((n) => /^\d+$/.test(n)).map(Number);
      nextId = Math.max(...published) + 1;
      for (const id of published) {
        const bootJson = await verifyBuildImage(loopLayout.buildDir(id));
        assert.equal(pairs.get(bootJson.files.bzImage.sha256), bootJson.files.initrd.sha256, `build ${id} pairs a kernel and an initrd of one result`);
      }
      const target = readlinkSync(loopLayout.machineLink('LOOP01'));
      assert.match(target, /^\.\.\/builds\/\d+$/);
      await verifyBuildImage(join(loopLayout.machinesDir, target));
      assert.deepEqual(readdirSync(loopLayout.machinesDir).filter((n) => !n.startsWith('.tmp-')), ['LOOP01']);
    }
    const before = readdirSync(loopLayout.buildsDir);
    assert.equal(await removeStaleStaging(loopLayout, 3600_000), 0, 'recent leftovers may be a publication in progress');
    assert.deepEqual(readdirSync(loopLayout.buildsDir), before);
    await removeStaleStaging(loopLayout, -1000);
    assert.deepEqual([...readdirSync(loopLayout.buildsDir), ...readdirSync(loopLayout.machinesDir)].filter((n) => n.startsWith('.tmp-')), []);
    assert.deepEqual(readdirSync(loopLayout.buildsDir).sort(), before.filter((n) => !n.startsWith('.tmp-')).sort());
  });
});
