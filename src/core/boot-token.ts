import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Boot tokens: the single-use proof an image script puts on its kernel line, `<issued at>.<nonce>.<signature>`,
 * signed with the build's own secret. A boot storm mints one per image script, so minting is built to
 * cost a few microseconds: the padded HMAC keys are made once per build (a `BootTokenMinter`), the
 * nonces come from the CSPRNG in blocks, and no buffer is allocated per token.
 */

/** Digits of a boot token's issue time (milliseconds since 1970), so markers sort as times do. */
const BOOT_TIME_DIGITS = 15;
/** How long a boot token can be reported after its script was handed out. */
export const BOOT_TOKEN_MAX_AGE_MS = 24 * 3600_000;
/** A token as minted: issue time, nonce (96 bits) and signature (192 bits), base64url. */
const TOKEN_FORM = /^(\d{15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{32})$/;

/** Bytes of a boot token's nonce (96 bits; 16 characters of base64url). */
const NONCE_BYTES = 12;
const NONCE_CHARS = 16;
/** Nonces drawn from the system's CSPRNG at once: one call per this many tokens instead of one each. */
const NONCES_PER_DRAW = 256;
let noncePool = Buffer.alloc(0);
let noncePoolAt = 0;

/**
 * Where 96 fresh random bits start in `noncePool`, each handed out once. Drawing them in blocks is
 * what Node's own `randomUUID` does; the bytes are the same CSPRNG output and are never reused.
 */
function takeNonce(): number {
  if (noncePoolAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * NONCES_PER_DRAW);
    noncePoolAt = 0;
  }
  const at = noncePoolAt;
  noncePoolAt += NONCE_BYTES;
  return at;
}

/** A fresh nonce as base64url text. */
function freshNonce(): string {
  const at = takeNonce();
  return noncePool.toString('base64url', at, at + NONCE_BYTES);
}

/** The base64url alphabet (RFC 4648, section 5), by value. */
const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');

/** Writes `count` bytes (a multiple of 3) of `source` from `from` into `target` at `at` as base64url. */
function base64urlFromBytes(target: Buffer, at: number, source: Uint8Array, from: number, count: number): void {
  for (let i = from; i < from + count; i += 3) {
    const n = (source[i]! << 16) | (source[i + 1]! << 8) | source[i + 2]!;
    target[at++] = BASE64URL[n >>> 18]!;
    target[at++] = BASE64URL[(n >>> 12) & 63]!;
    target[at++] = BASE64URL[(n >>> 6) & 63]!;
    target[at++] = BASE64URL[n & 63]!;
  }
}

/** The first `count` characters of a latin1 string (a byte each) into `target` at `at`. */
function copyLatin1(text: string, target: Uint8Array, at: number, count: number): void {
  for (let i = 0; i < count; i++) target[at + i] = text.charCodeAt(i);
}

/** The issue time as written in a token, remembered for the millisecond it was made in. */
let issuedAt = -1;
let issuedText = '';
function issuedField(now: number): string {
  if (now !== issuedAt) {
    issuedAt = now;
    issuedText = String(now).padStart(BOOT_TIME_DIGITS, '0');
  }
  return issuedText;
}

/** `crypto.hash` (Node 20.12 and later): a digest without a Hash object. */
const oneShotHash = (nodeCrypto as { hash?: OneShotHash }).hash;
interface OneShotHash {
  (algorithm: string, data: Uint8Array, encoding: 'buffer'): Buffer;
  (algorithm: string, data: Uint8Array, encoding: 'latin1' | 'base64url'): string;
}
/** SHA-256's block size: HMAC pads its key to it. */
const SHA256_BLOCK = 64;
const SHA256_BYTES = 32;
/** Bytes of the signature kept in a token: 24 bytes, 32 characters of base64url. */
const SIGNATURE_BYTES = 24;
const SIGNATURE_CHARS = 32;
/** Characters of every boot token: issue time, nonce and signature with their two dots (65). */
export const BOOT_TOKEN_LENGTH = BOOT_TIME_DIGITS + 1 + NONCE_CHARS + 1 + SIGNATURE_CHARS;

/** The key padded as HMAC (RFC 2104) pads it: K ^ ipad and K ^ opad, each one SHA-256 block. */
function paddedKeys(secret: string): { inner: Buffer; outer: Buffer } {
  let key = Buffer.from(secret, 'utf8');
  if (key.length > SHA256_BLOCK) key = createHash('sha256').update(key).digest();
  const inner = Buffer.alloc(SHA256_BLOCK, 0x36);
  const outer = Buffer.alloc(SHA256_BLOCK, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i]! ^= key[i]!;
    outer[i]! ^= key[i]!;
  }
  return { inner, outer };
}

/**
 * HMAC-SHA256 (RFC 2104) of `message` under `secret`, computed as its definition reads,
 * H((K ^ opad) || H((K ^ ipad) || m)): the same bytes as `createHmac`.
 */
export function hmacSha256(secret: string, message: string): Buffer {
  if (typeof oneShotHash !== 'function') return createHmac('sha256', secret).update(message).digest();
  const { inner, outer } = paddedKeys(secret);
  const innerHash = oneShotHash('sha256', Buffer.concat([inner, Buffer.from(message, 'utf8')]), 'buffer');
  return oneShotHash('sha256', Buffer.concat([outer, innerHash]), 'buffer');
}

/**
 * Mints and checks the boot tokens of one build. The signed message is
 * `metal-boot:<build id>:<issued at>:<nonce>`; its length is fixed for a build, so the minter keeps
 * the padded inner key and the message in one buffer and overwrites only the issue time and nonce.
 */
export class BootTokenMinter {
  private readonly secret: string;
  /** K ^ ipad, then the message; K ^ opad, then the inner digest. */
  private readonly inner: Buffer | undefined;
  private readonly outer: Buffer | undefined;
  /** The outer digest's bytes, copied from its latin1 string to be encoded into a token. */
  private readonly digest: Buffer | undefined;
  private readonly variableAt: number;

  constructor(
    readonly buildId: number,
    secret: string,
  ) {
    if (!Number.isSafeInteger(buildId) || buildId < 1) throw new Error(`boot token: build id ${buildId} is not a positive whole number`);
    this.secret = secret;
    const prefix = `metal-boot:${buildId}:`;
    this.variableAt = SHA256_BLOCK + prefix.length;
    if (typeof oneShotHash !== 'function') return;
    const pads = paddedKeys(secret);
    // The three share one allocation, so minting reads a few adjacent cache lines per build.
    const innerBytes = this.variableAt + BOOT_TIME_DIGITS + 1 + NONCE_CHARS;
    const outerBytes = SHA256_BLOCK + SHA256_BYTES;
    const state = Buffer.alloc(innerBytes + outerBytes + SHA256_BYTES);
    this.inner = state.subarray(0, innerBytes);
    this.outer = state.subarray(innerBytes, innerBytes + outerBytes);
    this.digest = state.subarray(innerBytes + outerBytes);
    pads.inner.copy(this.inner, 0);
    this.inner.write(prefix, SHA256_BLOCK, 'latin1');
    this.inner[this.variableAt + BOOT_TIME_DIGITS] = 0x3a; // ':'
    pads.outer.copy(this.outer, 0);
  }

  /** A fresh token, issued at `now`. */
  mint(now = Date.now()): string {
    if (this.inner === undefined) {
      const issued = issuedField(now);
      const nonce = freshNonce();
      return `${issued}.${nonce}.${this.sign(issued, nonce)}`;
    }
    const bytes = Buffer.allocUnsafe(BOOT_TOKEN_LENGTH);
    this.mintInto(bytes, 0, now);
    return bytes.toString('latin1');
  }

  /**
   * A fresh token, issued at `now`, written as `BOOT_TOKEN_LENGTH` ASCII bytes into `target` at `at`
   * (an answer's bytes, framed around it): what `mint` returns, without a string on the way. The
   * nonce and the signature are encoded straight into place; only the digests pass through strings.
   */
  mintInto(target: Buffer, at: number, now = Date.now()): void {
    const { inner, outer, digest, variableAt } = this;
    if (inner === undefined || outer === undefined || digest === undefined) {
      target.write(this.mint(now), at, 'latin1');
      return;
    }
    const nonceAt = takeNonce();
    const issued = issuedField(now);
    // Bytes are moved by plain stores: a call into Buffer's native code costs more than these few bytes.
    copyLatin1(issued, inner, variableAt, BOOT_TIME_DIGITS);
    copyLatin1(issued, target, at, BOOT_TIME_DIGITS);
    const nonceChars = variableAt + BOOT_TIME_DIGITS + 1;
    base64urlFromBytes(inner, nonceChars, noncePool, nonceAt, NONCE_BYTES);
    target[at + BOOT_TIME_DIGITS] = 0x2e; // '.'
    for (let i = 0; i < NONCE_CHARS; i++) target[at + BOOT_TIME_DIGITS + 1 + i] = inner[nonceChars + i]!;
    target[at + BOOT_TIME_DIGITS + 1 + NONCE_CHARS] = 0x2e;
    // Digests as strings (latin1: a byte a character), so no buffer is allocated per token.
    copyLatin1(oneShotHash!('sha256', inner, 'latin1'), outer, SHA256_BLOCK, SHA256_BYTES);
    copyLatin1(oneShotHash!('sha256', outer, 'latin1'), digest, 0, SIGNATURE_BYTES);
    base64urlFromBytes(target, at + BOOT_TIME_DIGITS + NONCE_CHARS + 2, digest, 0, SIGNATURE_BYTES);
  }

  /**
   * The marker (`<issued at>.<nonce>`) of a genuine, unexpired token of this build, or undefined
   * (`now` null: any age). The signature is compared in constant time.
   */
  verify(token: string, now: number | null): string | undefined {
    const m = TOKEN_FORM.exec(token);
    if (!m || this.secret === '') return undefined;
    const [, issued, nonce, signature] = m as unknown as [string, string, string, string];
    const age = now === null ? 0 : now - Number(issued);
    if (!(age >= -60_000 && age <= BOOT_TOKEN_MAX_AGE_MS)) return undefined;
    const expected = Buffer.from(this.sign(issued, nonce));
    const given = Buffer.from(signature);
    return expected.length === given.length && timingSafeEqual(expected, given) ? `${issued}.${nonce}` : undefined;
  }

  /** The signature of an issue time (15 digits) and nonce (16 base64url characters), as a token carries it. */
  private sign(issued: string, nonce: string): string {
    const { inner, outer } = this;
    if (inner === undefined || outer === undefined || issued.length !== BOOT_TIME_DIGITS || nonce.length !== NONCE_CHARS) {
      return hmacSha256(this.secret, `metal-boot:${this.buildId}:${issued}:${nonce}`).toString('base64url', 0, SIGNATURE_BYTES);
    }
    inner.write(issued, this.variableAt, 'latin1');
    inner.write(nonce, this.variableAt + BOOT_TIME_DIGITS + 1, 'latin1');
    // Digests as strings (latin1: a byte a character), so no buffer is allocated per token.
    outer.write(oneShotHash!('sha256', inner, 'latin1'), SHA256_BLOCK, 'latin1');
    return oneShotHash!('sha256', outer, 'base64url').slice(0, SIGNATURE_CHARS);
  }
}
