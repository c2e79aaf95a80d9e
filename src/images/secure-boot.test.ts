import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSecureBootKeys, EfiSigner, SecureBootUnavailable, SigningError, verifiedBy } from './secure-boot.ts';
import { EFI_SAMPLE, makeSigningKeys, signingSkipReason } from '../../test/support/secure-boot.ts';

const skip = signingSkipReason({ efiSample: true });

describe('Secure Boot signing (real sbsign and sbverify)', { skip }, () => {
  let dir: string;
  let site: ReturnType<typeof makeSigningKeys>;
  let other: ReturnType<typeof makeSigningKeys>;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-sb-'));
    site = makeSigningKeys(dir, 'Site db');
    other = makeSigningKeys(dir, 'Other db');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a matching pair and says what is wrong with one that does not fit', () => {
    assert.equal(checkSecureBootKeys(site), undefined);
    assert.deepEqual(checkSecureBootKeys({ key: site.key, cert: other.cert }), { setting: 'METAL_SECURE_BOOT_CERT', reason: 'is not the certificate of METAL_SECURE_BOOT_KEY (their public keys differ)' });
    assert.deepEqual(checkSecureBootKeys({ key: site.cert, cert: site.cert }), { setting: 'METAL_SECURE_BOOT_KEY', reason: 'is not a PEM private key' });
    assert.deepEqual(checkSecureBootKeys({ key: site.key, cert: site.key }), { setting: 'METAL_SECURE_BOOT_CERT', reason: 'is not a PEM X.509 certificate' });
    assert.equal(checkSecureBootKeys({ key: join(dir, 'missing.key'), cert: site.cert })?.reason, 'cannot be read (ENOENT)');
    const encrypted = join(dir, 'encrypted.key');
    execFileSync('openssl', ['pkey', '-in', site.key, '-aes256', '-passout', 'pass:secret', '-out', encrypted], { stdio: 'ignore' });
    assert.match(checkSecureBootKeys({ key: encrypted, cert: site.cert })?.reason ?? '', /^is encrypted, and sbsign cannot ask for its passphrase/);
  });

  it('signs an EFI image so that the site certificate verifies it and no other does; the original is untouched', async () => {
    const signer = EfiSigner.find(site, 'the test');
    assert.equal(signer.subject, 'CN=Site db');
    assert.match(signer.certSha256, /^[0-9a-f]{64}$/);
    const input = join(dir, 'input.efi');
    copyFileSync(EFI_SAMPLE, input);
    const before = readFileSync(input);
    const output = join(dir, 'signed.efi');
    await signer.sign(input, output);
    assert.equal(await verifiedBy(output, site.cert), true);
    assert.equal(await verifiedBy(output, other.cert), false);
    assert.equal(await verifiedBy(input, site.cert), false);
    assert.deepEqual(readFileSync(input), before);
    // In place: the file is replaced (a hard link to it elsewhere keeps the old bytes).
    await signer.sign(input, input);
    assert.equal(await verifiedBy(input, site.cert), true);
  });

  it('refuses a file that is no EFI image, leaving nothing behind', async () => {
    const signer = EfiSigner.find(site, 'the test');
    const text = join(dir, 'not-efi');
    writeFileSync(text, 'just text\n');
    const output = join(dir, 'not-efi.signed');
    await assert.rejects(signer.sign(text, output), (err: unknown) => err instanceof SigningError && /^sbsign could not sign .*not-efi: /.test(err.message));
    assert.throws(() => readFileSync(output), /ENOENT/);
  });

  it('without sbsign, says what to install and which setting asks for it', () => {
    assert.throws(
      () => EfiSigner.find(site, 'the builder', '/nonexistent'),
      (err: unknown) => err instanceof SecureBootUnavailable && err.message === 'METAL_SECURE_BOOT_KEY is set, so the builder signs with sbsign, and this host has no sbsign on PATH; install sbsigntool (Debian) or pkgs.sbsigntool (NixOS), or unset METAL_SECURE_BOOT_KEY and METAL_SECURE_BOOT_CERT',
    );
  });
});
