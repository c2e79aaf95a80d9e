import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Logger } from '../core/logger.ts';
import { certificateSha256, verifiedBy, type SecureBootKeys } from '../images/secure-boot.ts';
import { EFI_SAMPLE, makeSigningKeys, signingSkipReason } from '../../test/support/secure-boot.ts';
import { servedIpxeDir, warnUnlessRegistrationSigned } from './secure-boot-start.ts';

describe('Secure Boot at the start of the boot and pxe roles', { skip: signingSkipReason({ efiSample: true }) }, () => {
  let dir: string;
  let site: SecureBootKeys;
  let other: SecureBootKeys;
  const warnings: string[] = [];
  const logger = { warn: (_fields: object, message: string) => warnings.push(message), info: () => undefined } as unknown as Logger;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-sb-start-'));
    site = makeSigningKeys(dir, 'Site db');
    other = makeSigningKeys(dir, 'Other db');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the registration kernel: a warning unless it is signed for the configured certificate', async () => {
    const imagesDir = join(dir, 'images');
    mkdirSync(join(imagesDir, 'registration'), { recursive: true });
    const bootJson = (secureBoot?: object) => writeFileSync(join(imagesDir, 'registration', 'boot.json'), JSON.stringify({ kernel_params: [], ...(secureBoot ? { secure_boot: secureBoot } : {}) }));
    const check = () => warnUnlessRegistrationSigned({ imagesDir, secureBoot: site }, logger);

    bootJson();
    assert.equal(await check(), true);
    assert.match(warnings.at(-1)!, /^boot: Secure Boot is on, and the registration kernel is not signed; machines that enforce Secure Boot will refuse it until it is built again with METAL_SECURE_BOOT_KEY set/);
    bootJson({ cert_sha256: certificateSha256(other.cert), subject: 'CN=Other db' });
    assert.equal(await check(), true);
    assert.match(warnings.at(-1)!, /the registration kernel is signed for another certificate/);
    bootJson({ cert_sha256: certificateSha256(site.cert), subject: 'CN=Site db' });
    const before = warnings.length;
    assert.equal(await check(), false);
    assert.equal(await warnUnlessRegistrationSigned({ imagesDir, secureBoot: undefined }, logger), false, 'Secure Boot off: nothing to say');
    assert.equal(await warnUnlessRegistrationSigned({ imagesDir: join(dir, 'none'), secureBoot: site }, logger), false, 'no registration image: said elsewhere');
    assert.equal(warnings.length, before);
  });

  test('the iPXE directory: METAL_IPXE_DIR as it is without Secure Boot, or when it is missing; else signed copies', async () => {
    const config = { ipxeDir: join(dir, 'ipxe'), dataDir: join(dir, 'data'), secureBoot: site };
    assert.equal(await servedIpxeDir({ ...config, secureBoot: undefined }, logger, 'boot'), config.ipxeDir);
    assert.equal(await servedIpxeDir(config, logger, 'boot'), config.ipxeDir, 'a missing METAL_IPXE_DIR is reported by what serves it');
    mkdirSync(config.ipxeDir);
    copyFileSync(EFI_SAMPLE, join(config.ipxeDir, 'snponly.efi'));
    const served = await servedIpxeDir(config, logger, 'boot');
    assert.equal(served, join(config.dataDir, 'ipxe-signed'));
    assert.equal(await verifiedBy(join(served, 'snponly.efi'), site.cert), true);
  });
});
