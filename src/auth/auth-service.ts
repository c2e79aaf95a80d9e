import { createHmac } from 'node:crypto';
import { RateLimitedError, UnauthorizedError } from '../core/errors.ts';
import { ROLES, nowIso, type Actor, type Role } from '../core/types.ts';
import type { Logger } from '../core/logger.ts';
import type { Storage } from '../core/ports.ts';
import type { Credential } from '../core/types.ts';
import { API_TOKEN_PREFIX, SESSION_PREFIX, generateToken, hashToken, isTokenShape } from './opaque-token.ts';
import { PasswordHasher } from './password-hasher.ts';
import { SecretBox } from './secret-box.ts';
import { SharedRateLimiter } from './shared-rate-limiter.ts';
import { TokenService } from './token-service.ts';
import { UserService, isUsername } from './user-service.ts';

/** How long a sign-in session lasts. */
export const SESSION_TTL_SECONDS = 12 * 3600;
/** last_used_at is written at most this often per credential. */
const TOUCH_INTERVAL_MS = 60_000;
const GENERIC_LOGIN_FAILURE = 'wrong username or password';

/** Who a presented credential belongs to, beyond the Actor recorded in events. */
export interface Principal {
  kind: 'session' | 'token';
  userId: number;
  username: string;
  /** Session id or API token id. */
  credentialId: number;
  actor: Actor;
  /** Sessions only: the SHA-256 of the session token (to end it, or keep it on a password change). */
  sessionHash?: string;
  /** API tokens only: the SHA-256 of the token (to look it up again while a stream is open). */
  tokenHash?: string;
}

export interface AuthServiceOptions {
  /** Sign-in failures allowed per (source address, username) before 429, e.g. 5 (refilling over `loginWindowSeconds`). */
  loginAttemptsPerAddressAndUser?: number;
  /** Sign-in failures allowed per source address across usernames, e.g. 20. */
  loginAttemptsPerAddress?: number;
  loginWindowSeconds?: number;
  now?: () => number;
}

/** A successful sign-in: the session token (shown once) and when it expires. */
export interface LoginResult {
  token: string;
  expires_at: string;
  principal: Principal;
}

/**
 * Sign-in, sessions, and resolving presented tokens to actors; holds the sign-in throttle (its
 * buckets in the database, shared by every replica), the user and token services, and the secret
 * box for sensitive columns.
 */
export class AuthService {
  readonly users: UserService;
  readonly tokens: TokenService;
  readonly secretBox: SecretBox;
  private readonly hasher = new PasswordHasher();
  private readonly perAddressAndUser: SharedRateLimiter;
  private readonly perAddress: SharedRateLimiter;
  private readonly csrfKey: Buffer;

  constructor(
    private readonly storage: Storage,
    private readonly logger: Logger,
    secretKey: Buffer,
    options: AuthServiceOptions = {},
  ) {
    this.users = new UserService(storage, this.hasher);
    this.tokens = new TokenService(storage);
    this.secretBox = new SecretBox(secretKey);
    this.csrfKey = createHmac('sha256', secretKey).update('metal csrf key').digest();
    const window = options.loginWindowSeconds ?? 15 * 60;
    // A store that fails refuses the sign-in: the throttle is never skipped.
    const common = { store: storage.rateLimits, refillSeconds: window, onStoreFailure: 'closed', logger, ...(options.now ? { now: options.now } : {}) } as const;
    this.perAddressAndUser = new SharedRateLimiter({ ...common, bucket: 'login:address-user', capacity: options.loginAttemptsPerAddressAndUser ?? 5 });
    this.perAddress = new SharedRateLimiter({ ...common, bucket: 'login:address', capacity: options.loginAttemptsPerAddress ?? 20 });
  }

  /**
   * Checks a username and password and opens a session. Wrong user and wrong password get the same
   * answer in about the same time. Failures are counted per (address, username) and per address, never
   * per username alone: nobody can lock an account for others, and a correct password from an address
   * that has not failed always signs in. Too many failures get 429.
   */
  async login(username: string, password: string, address: string): Promise<LoginResult> {
    const addressKey = loginAddressKey(address);
    const pairKey = `${addressKey} ${username.toLowerCase()}`;
    const byPair = await this.perAddressAndUser.take(pairKey);
    const byAddress = await this.perAddress.take(addressKey);
    if (!byPair.allowed || !byAddress.allowed) {
      if (byPair.allowed) await this.perAddressAndUser.refund(pairKey);
      if (byAddress.allowed) await this.perAddress.refund(addressKey);
      const wait = Math.max(byPair.allowed ? 0 : byPair.retryAfterSeconds, byAddress.allowed ? 0 : byAddress.retryAfterSeconds);
      throw new RateLimitedError(`too many failed sign-in attempts from this address; try again in ${wait} s`, wait);
    }
    // A name no account can have is an unknown user, never a query (PostgreSQL refuses a NUL in one).
    const user = isUsername(username) ? await this.storage.users.findByUsername(username) : undefined;
    const ok = user ? await this.hasher.verify(user.password_hash, password) : await this.hasher.verifyDummy(password);
    if (!user || !ok || user.disabled) {
      await this.storage.events.record({
        kind: 'auth.login_failed',
        actor: { kind: 'anonymous', name: 'anonymous' },
        message: `failed sign-in as ${JSON.stringify(username.slice(0, 64))} from ${address}`,
        data: { username: username.slice(0, 64), address },
      });
      throw new UnauthorizedError(GENERIC_LOGIN_FAILURE);
    }
    await this.perAddressAndUser.reset(pairKey);
    await this.perAddress.refund(addressKey);
    const token = generateToken(SESSION_PREFIX);
    const now = nowIso();
    const expiresAt = new Date(Date.parse(now) + SESSION_TTL_SECONDS * 1000).toISOString();
    const sessionHash = hashToken(token);
    await this.storage.credentials.deleteExpiredSessions(now);
    await this.storage.credentials.insertSession({ tokenHash: sessionHash, userId: user.id, address, now, expiresAt });
    const actor: Actor = { kind: 'user', name: user.username, role: user.role, id: user.id };
    await this.storage.events.record({ kind: 'auth.login', actor, message: `${user.username} signed in from ${address}`, data: { address } });
    const principal: Principal = { kind: 'session', userId: user.id, username: user.username, credentialId: 0, actor, sessionHash };
    return { token, expires_at: expiresAt, principal };
  }

  /** Ends a session; recorded as `auth.logout`. API tokens are revoked with DELETE /api/v1/tokens/{id} instead. */
  async logout(principal: Principal): Promise<void> {
    if (principal.kind !== 'session' || !principal.sessionHash) return;
    if (await this.storage.credentials.deleteSession(principal.sessionHash)) {
      await this.storage.events.record({ kind: 'auth.logout', actor: principal.actor, message: `${principal.username} signed out` });
    }
  }

  /** The principal behind a presented `ms_…` or `mt_…` token, or undefined when it is unknown, expired, revoked or disabled. */
  async resolve(token: string): Promise<Principal | undefined> {
    const isSession = isTokenShape(token, SESSION_PREFIX);
    if (!isSession && !isTokenShape(token, API_TOKEN_PREFIX)) return undefined;
    const hash = hashToken(token);
    const found = isSession ? await this.storage.credentials.findSession(hash) : await this.storage.credentials.findToken(hash);
    if (!found || found.disabled || found.revokedAt) return undefined;
    const now = Date.now();
    if (found.expiresAt !== null && Date.parse(found.expiresAt) <= now) return undefined;
    await this.touch(isSession, found, now);
    if (isSession) {
      const actor: Actor = { kind: 'user', name: found.username, role: found.userRole, id: found.userId };
      return { kind: 'session', userId: found.userId, username: found.username, credentialId: found.id, actor, sessionHash: hash };
    }
    // A token never acts above its owner's current role.
    const role = lowerRole(found.tokenRole!, found.userRole);
    const actor: Actor = { kind: 'token', name: `${found.username}/${found.tokenName}`, role, id: found.id };
    return { kind: 'token', userId: found.userId, username: found.username, credentialId: found.id, actor, tokenHash: hash };
  }

  /**
   * Whether the credential behind a principal still works: not signed out, revoked or expired, and its
   * user neither disabled nor removed. Long-lived responses (log streams) ask it again and again.
   */
  async isStillValid(principal: Principal): Promise<boolean> {
    const hash = principal.kind === 'session' ? principal.sessionHash : principal.tokenHash;
    if (hash === undefined) return false;
    const found = principal.kind === 'session' ? await this.storage.credentials.findSession(hash) : await this.storage.credentials.findToken(hash);
    if (!found || found.disabled || found.revokedAt || found.userId !== principal.userId) return false;
    return found.expiresAt === null || Date.parse(found.expiresAt) > Date.now();
  }

  /** The CSRF token of a session: an HMAC of the session token, so it needs no storage. */
  csrfToken(sessionToken: string): string {
    return createHmac('sha256', this.csrfKey).update(sessionToken).digest('base64url');
  }

  private async touch(isSession: boolean, found: Credential, now: number): Promise<void> {
    if (found.lastUsedAt !== null && now - Date.parse(found.lastUsedAt) < TOUCH_INTERVAL_MS) return;
    const at = new Date(now).toISOString();
    try {
      await (isSession ? this.storage.credentials.touchSession(found.id, at) : this.storage.credentials.touchToken(found.id, at));
    } catch (err) {
      this.logger.warn({ err }, 'auth: could not record last use');
    }
  }
}

/**
 * The key sign-in failures are counted under for an address: IPv4 as is (also when mapped into IPv6),
 * IPv6 by its /64, since one holder gets a whole /64 and could otherwise rotate through it.
 */
export function loginAddressKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

function lowerRole(a: Role, b: Role): Role {
  return ROLES.indexOf(a) <= ROLES.indexOf(b) ? a : b;
}
