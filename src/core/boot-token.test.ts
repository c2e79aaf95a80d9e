import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { BOOT_TOKEN_LENGTH, BOOT_TOKEN_MAX_AGE_MS, BootTokenMinter, hmacSha256 } from './boot-token.ts';

/** The signature a token must carry, computed with Node's own HMAC: the definition the minter is checked against. */
function expectedSignature(secret: string, buildId: number, issued: string, nonce: string): string {
  return createHmac('sha256', secret).update(`metal-boot:${buildId}:${issued}:${nonce}`).digest('base64url').slice(0, 32);
}

describe('boot tokens', () => {
  test('hmacSha256 is HMAC-SHA256: the same bytes as createHmac for keys shorter, as long as and longer than a block', () => {
    for (const secret of ['', 'k', 'x'.repeat(32), 'y'.repeat(64), 'z'.repeat(65), 'é'.repeat(150)]) {
      for (const message of ['', 'metal-boot:7:001795912292335:AAAAAAAAAAAAAAAA', 'ü\n'.repeat(100)]) {
        assert.deepEqual(hmacSha256(secret, message), createHmac('sha256', secret).update(message).digest(), `${secret.length} ${message.length}`);
      }
    }
  });

  test('a minted token is <issued>.<nonce>.<signature> and its signature is HMAC-SHA256 of the build, time and nonce, token after token', () => {
    // One minter reuses its buffers: every token of a long run must still carry its own signature.
    for (const [buildId, secret] of [
      [1, 's'],
      [42, 'x'.repeat(64)],
      [987654321, 'é'.repeat(70)],
    ] as const) {
      const minter = new BootTokenMinter(buildId, secret);
      for (let i = 0; i < 300; i++) {
        const now = 1_795_912_292_335 + i * 7;
        const token = minter.mint(now);
        const m = /^(\d{15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{32})$/.exec(token);
        assert.ok(m, token);
        assert.equal(Number(m[1]), now);
        assert.equal(m[3], expectedSignature(secret, buildId, m[1]!, m[2]!), `build ${buildId}, token ${i}`);
      }
    }
  });

  test('mintInto writes the same kind of token into place and touches nothing around it', () => {
    const minter = new BootTokenMinter(42, 'secret');
    const bytes = Buffer.alloc(BOOT_TOKEN_LENGTH + 10, 0x23);
    for (let i = 0; i < 300; i++) {
      const now = 1_795_912_292_335 + i;
      minter.mintInto(bytes, 5, now);
      assert.equal(bytes.toString('latin1', 0, 5) + bytes.toString('latin1', 5 + BOOT_TOKEN_LENGTH), '#'.repeat(10));
      const token = bytes.toString('latin1', 5, 5 + BOOT_TOKEN_LENGTH);
      const m = /^(\d{15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{32})$/.exec(token);
      assert.ok(m, token);
      assert.equal(Number(m[1]), now);
      assert.equal(m[3], expectedSignature('secret', 42, m[1]!, m[2]!), `token ${i}`);
      assert.equal(minter.verify(token, now), `${m[1]}.${m[2]}`);
    }
  });

  test('minters of different builds do not share state', () => {
    const a = new BootTokenMinter(1, 'secret-a');
    const b = new BootTokenMinter(2, 'secret-b');
    const ta = a.mint(1_000);
    b.mint(1_000);
    assert.equal(a.verify(ta, 1_000)?.startsWith('000000000001000.'), true);
    assert.equal(b.verify(ta, 1_000), undefined);
    assert.equal(new BootTokenMinter(2, 'secret-a').verify(ta, 1_000), undefined, 'another build with the same secret');
  });

  test('verify accepts its own tokens until they expire and refuses any change', () => {
    const minter = new BootTokenMinter(7, 'secret');
    const now = 1_795_912_292_335;
    const token = minter.mint(now);
    const [issued, nonce] = token.split('.');
    assert.equal(minter.verify(token, now), `${issued}.${nonce}`);
    assert.equal(minter.verify(token, null), `${issued}.${nonce}`);
    assert.equal(minter.verify(token, now + BOOT_TOKEN_MAX_AGE_MS), `${issued}.${nonce}`);
    assert.equal(minter.verify(token, now + BOOT_TOKEN_MAX_AGE_MS + 1), undefined, 'expired');
    assert.equal(minter.verify(token, now - 60_001), undefined, 'issued in the future');
    for (let i = 0; i < token.length; i++) {
      if (token[i] === '.') continue;
      const changed = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
      assert.equal(minter.verify(changed, null), undefined, `character ${i} changed`);
    }
    for (const bad of ['', token + 'A', token.slice(1), ` ${token}`, token.replace(/\./g, ':')]) assert.equal(minter.verify(bad, null), undefined, JSON.stringify(bad));
    assert.equal(new BootTokenMinter(7, '').verify(new BootTokenMinter(7, '').mint(now), now), undefined, 'a build without a secret accepts nothing');
  });

  test('every minted token has its own nonce', () => {
    const minter = new BootTokenMinter(1, 'secret');
    const nonces = new Set(Array.from({ length: 2000 }, () => minter.mint(1_000).split('.')[1]));
    assert.equal(nonces.size, 2000);
  });

  test('a build id that is not a positive whole number is refused', () => {
    for (const id of [0, -1, 1.5, Number.NaN]) assert.throws(() => new BootTokenMinter(id, 's'), /not a positive whole number/);
  });
});
