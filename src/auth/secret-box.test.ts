import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../config/config.ts';
import { SecretBox } from './secret-box.ts';
import { SECRET_KEY_FILE, loadSecretKey, parseSecretKey } from './secret-key.ts';

describe('SecretBox (AES-256-GCM)', () => {
  const box = new SecretBox(randomBytes(32));

  test('round-trips text, including empty and non-ASCII', () => {
    for (const plain of ['', 'calvin', 'pässwörd ✓ with spaces', 'x'.repeat(10_000)]) assert.equal(box.decrypt(box.encrypt(plain)), plain);
  });

  test('is versioned, hides the plaintext, and never repeats a ciphertext', () => {
    const a = box.encrypt('bmc-password');
    const b = box.encrypt('bmc-password');
    assert.match(a, /^v1:[A-Za-z0-9_-]+$/);
    assert.notEqual(a, b);
    assert.equal(a.includes('bmc-password'), false);
  });

  test('refuses a tampered value, another key, another context, and unknown formats', () => {
    const sealed = box.encrypt('secret', 'machines.bmc_password:1');
    const body = Buffer.from(sealed.slice(3), 'base64url');
    body[body.length - 20]! ^= 1;
    assert.throws(() => box.decrypt(`v1:${body.toString('base64url')}`, 'machines.bmc_password:1'), /does not decrypt/);
    assert.throws(() => new SecretBox(randomBytes(32)).decrypt(sealed, 'machines.bmc_password:1'), /does not decrypt/);
    assert.throws(() => box.decrypt(sealed, 'machines.bmc_password:2'), /does not decrypt/);
    assert.equal(box.decrypt(sealed, 'machines.bmc_password:1'), 'secret');
    assert.throws(() => box.decrypt(`v2:${sealed.slice(3)}`), /unknown format "v2"/);
    assert.throws(() => box.decrypt('plain text'), /unknown format/);
    assert.throws(() => box.decrypt('v1:AAAA'), /too short/);
  });

  test('needs a 32-byte key', () => {
    assert.throws(() => new SecretBox(randomBytes(16)), /32 bytes/);
  });
});

describe('the secret key', () => {
  test('METAL_SECRET_KEY as 64 hex digits or as base64', () => {
    const key = randomBytes(32);
    assert.deepEqual(parseSecretKey(key.toString('hex')), key);
    assert.deepEqual(parseSecretKey(key.toString('base64')), key);
    assert.deepEqual(parseSecretKey(key.toString('base64url')), key);
  });

  test('a malformed key stops start-up naming METAL_SECRET_KEY, without echoing it', () => {
    for (const bad of ['short', 'z'.repeat(64), randomBytes(16).toString('hex'), randomBytes(31).toString('base64')]) {
      assert.throws(
        () => loadSecretKey({ secretKey: bad, dataDir: '/nonexistent' }),
        (err: unknown) => err instanceof ConfigError && err.key === 'METAL_SECRET_KEY' && !err.message.includes(bad) && /32-byte key/.test(err.message),
      );
    }
  });

  test('without METAL_SECRET_KEY, one is generated into the data dir (mode 0600) and reused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-key-'));
    try {
      const first = loadSecretKey({ secretKey: undefined, dataDir: dir });
      assert.equal(first.length, 32);
      const path = join(dir, SECRET_KEY_FILE);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(readFileSync(path, 'utf8').trim(), first.toString('hex'));
      assert.deepEqual(loadSecretKey({ secretKey: undefined, dataDir: dir }), first);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
