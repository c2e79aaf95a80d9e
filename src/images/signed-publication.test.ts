import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImageLayout } from './image-layout.ts';
import { ImageResultError, publishBuildImage, verifyBuildImage } from './image-publisher.ts';
import { EfiSigner, verifiedBy } from './secure-boot.ts';
import { prepareSignedIpxeDir } from './signed-ipxe.ts';
import { EFI_SAMPLE, makeSigningKeys, signingSkipReason } from '../../test/support/secure-boot.ts';

const skip = signingSkipReason({ efiSample: true });
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('publication with Secure Boot (real sbsign)', { skip }, () => {
  let work: string;
  let layout: ImageLayout;
  let signer: EfiSigner;
  let cert: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'metal-signed-'));
    layout = new ImageLayout(join(work, 'images'));
    const keys = makeSigningKeys(work, 'Site db');
    cert = keys.cert;
    signer = EfiSigner.find(keys, 'the test');
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const result = (name: string, kernel: Buffer | string) => {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'bzImage'), kernel);
    writeFileSync(join(dir, 'initrd'), `initrd of ${name}`);
    writeFileSync(join(dir, 'boot.json'), JSON.stringify({ init: '/nix/store/abc-nixos-system-web-01/init', kernel_params: ['console=ttyS0'] }));
    return dir;
  };

  test('the published kernel is signed, its size and sha256 are the signed file\'s, boot.json names the certificate, the result is untouched', async () => {
    const kernel = readFileSync(EFI_SAMPLE);
    const dir = result('one', kernel);
    const { bootJson } = await publishBuildImage(layout, { buildId: 1, resultDir: dir, signer });
    const published = join(layout.buildDir(1), 'bzImage');
    assert.equal(await verifiedBy(published, cert), true);
    const bytes = readFileSync(published);
    assert.deepEqual(bootJson.files.bzImage, { size: bytes.length, sha256: sha256(bytes) });
    assert.deepEqual(bootJson.secure_boot, { cert_sha256: signer.certSha256, subject: 'CN=Site db' });
    assert.deepEqual((await verifyBuildImage(layout.buildDir(1))).files.bzImage, bootJson.files.bzImage, 'the published files verify against boot.json');
    assert.deepEqual(readFileSync(join(dir, 'bzImage')), kernel, 'the result (a store path) is not changed');
  });

  test('a build of an already published store path signs the result\'s kernel again, leaving the earlier build\'s file as it was', async () => {
    const dir = result('two', readFileSync(EFI_SAMPLE));
    await publishBuildImage(layout, { buildId: 2, resultDir: dir, signer });
    const earlier = readFileSync(join(layout.buildDir(2), 'bzImage'));
    const { bootJson, reusedFrom } = await publishBuildImage(layout, { buildId: 3, resultDir: dir, signer, reuseBuildId: 2 });
    assert.equal(reusedFrom, 2, 'the initrd is linked');
    assert.deepEqual(readFileSync(join(layout.buildDir(2), 'bzImage')), earlier);
    const again = readFileSync(join(layout.buildDir(3), 'bzImage'));
    assert.equal(again.length, earlier.length, 'one signature, not a second one on top of the first');
    assert.equal(await verifiedBy(join(layout.buildDir(3), 'bzImage'), cert), true);
    assert.equal(bootJson.files.bzImage.sha256, sha256(again));
  });

  test('a kernel that cannot be signed fails publication with one line, publishing nothing', async () => {
    const dir = result('text', 'not an EFI image');
    await assert.rejects(publishBuildImage(layout, { buildId: 4, resultDir: dir, signer }), (err: unknown) => err instanceof ImageResultError && /^the kernel cannot be signed for Secure Boot: sbsign could not sign /.test(err.message) && !err.message.includes('\n'));
    assert.deepEqual(readdirSync(layout.buildsDir).sort(), ['1', '2', '3']);
  });

  test('the iPXE directory for Secure Boot: EFI binaries signed, others copied, files gone from the source removed', async () => {
    const source = join(work, 'ipxe');
    mkdirSync(source);
    copyFileSync(EFI_SAMPLE, join(source, 'snponly.efi'));
    writeFileSync(join(source, 'undionly.kpxe'), 'bios ipxe');
    mkdirSync(join(source, 'subdir'));
    const target = join(work, 'ipxe-signed');
    mkdirSync(target);
    writeFileSync(join(target, 'stale.efi'), 'from an earlier METAL_IPXE_DIR');
    const prepared = await prepareSignedIpxeDir(source, target, signer);
    assert.deepEqual(prepared, { dir: target, signed: ['snponly.efi'], copied: ['undionly.kpxe'] });
    assert.deepEqual(readdirSync(target).sort(), ['snponly.efi', 'undionly.kpxe']);
    assert.equal(await verifiedBy(join(target, 'snponly.efi'), cert), true);
    assert.equal(readFileSync(join(target, 'undionly.kpxe'), 'utf8'), 'bios ipxe');
    assert.deepEqual(await prepareSignedIpxeDir(join(work, 'missing'), join(work, 'empty'), signer), { dir: join(work, 'empty'), signed: [], copied: [] });
  });
});
