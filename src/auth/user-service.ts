import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, UnauthorizedError } from '../core/errors.ts';
import { DuplicateKeyError, type Storage } from '../core/ports.ts';
import { ROLES, nowIso, type Actor, type Role, type User } from '../core/types.ts';
import { checkPasswordStrength, type PasswordHasher } from './password-hasher.ts';

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** Whether `username` has the shape every account's name has (checkUsername). */
export function isUsername(username: unknown): username is string {
  return typeof username === 'string' && USERNAME.test(username);
}

/** Refuses a username that is not 1-64 of A-Z a-z 0-9 . _ @ - (starting with a letter or digit). */
export function checkUsername(username: string): void {
  if (!isUsername(username)) {
    throw new InvalidInputError('username must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit');
  }
}

export function checkRole(role: string): asserts role is Role {
  if (!(ROLES as readonly string[]).includes(role)) throw new InvalidInputError(`role must be one of ${ROLES.join(', ')}`);
}

/** User accounts: create, change, remove, change a password; every change is an event. */
export class UserService {
  constructor(
    private readonly storage: Storage,
    private readonly hasher: PasswordHasher,
  ) {}

  list(limit = 50, offset = 0): Promise<{ items: User[]; total: number }> {
    return this.storage.users.list(limit, offset);
  }

  /** By numeric id or by username. */
  async get(ref: string | number): Promise<User> {
    const text = String(ref);
    // Usernames may be all digits: an id that matches no user is tried as a name.
    const user = (/^\d{1,15}$/.test(text) ? await this.storage.users.findById(Number(text)) : undefined) ?? (await this.storage.users.findByUsername(text));
    if (!user) throw new NotFoundError(`user ${ref} not found`);
    return strip(user);
  }

  async create(input: { username: string; role: string; password: string }, actor: Actor): Promise<User> {
    checkUsername(input.username);
    checkRole(input.role);
    checkPasswordStrength(input.password);
    const passwordHash = await this.hasher.hash(input.password);
    try {
      return await this.storage.transaction(async (tx) => {
        const user = await tx.users.insert({ username: input.username, role: input.role as Role, passwordHash, now: nowIso() });
        await tx.events.record({ kind: 'user.created', actor, message: `user ${user.username} created with role ${user.role}`, data: { user_id: user.id, username: user.username, role: user.role } });
        return user;
      });
    } catch (err) {
      if (err instanceof DuplicateKeyError) throw new ConflictError(`user ${input.username} already exists`);
      throw err;
    }
  }

  /**
   * Changes a user's role, disabled flag or password (admin). The last enabled admin cannot be demoted
   * or disabled. A new password ends the user's sessions and revokes their API tokens (unless
   * `keep_tokens`); disabling does both, so re-enabling brings neither back.
   */
  async update(ref: string, changes: { role?: string; disabled?: boolean; password?: string; keep_tokens?: boolean }, actor: Actor): Promise<User> {
    if (changes.role !== undefined) checkRole(changes.role);
    if (changes.password !== undefined) checkPasswordStrength(changes.password);
    if (changes.keep_tokens !== undefined && changes.password === undefined) throw new InvalidInputError('keep_tokens applies only with a new password');
    if (changes.keep_tokens === true && changes.disabled === true) throw new InvalidInputError('keep_tokens cannot be used when disabling: a disabled account loses its tokens');
    const passwordHash = changes.password !== undefined ? await this.hasher.hash(changes.password) : undefined;
    const target = await this.get(ref);
    return this.storage.transaction(async (tx) => {
      const losesAdmin = target.role === 'admin' && !target.disabled && ((changes.role !== undefined && changes.role !== 'admin') || changes.disabled === true);
      if (losesAdmin && (await tx.users.countActiveAdmins()) <= 1) {
        throw new ConflictError(`${target.username} is the last admin; make another admin first`);
      }
      const now = nowIso();
      const user = await tx.users.update(
        target.id,
        {
          ...(changes.role !== undefined ? { role: changes.role as Role } : {}),
          ...(changes.disabled !== undefined ? { disabled: changes.disabled } : {}),
          ...(passwordHash !== undefined ? { passwordHash } : {}),
          now,
        },
      );
      if (!user) throw new NotFoundError(`user ${ref} not found`);
      if (passwordHash !== undefined || changes.disabled === true) await tx.credentials.deleteSessionsOf(user.id);
      const revokeTokens = changes.disabled === true || (passwordHash !== undefined && changes.keep_tokens !== true);
      const revoked = revokeTokens ? await tx.credentials.revokeTokensOf(user.id, now) : [];
      const what = [
        changes.role !== undefined && changes.role !== target.role ? `role ${target.role} -> ${user.role}` : '',
        changes.disabled !== undefined && changes.disabled !== target.disabled ? (user.disabled ? 'disabled' : 'enabled') : '',
        passwordHash !== undefined ? 'password reset' : '',
        revoked.length > 0 ? `${revoked.length} API token(s) revoked` : '',
      ].filter(Boolean);
      await tx.events.record({
        kind: 'user.updated',
        actor,
        message: `user ${user.username}: ${what.join(', ') || 'no change'}`,
        data: { user_id: user.id, username: user.username, role: user.role, disabled: user.disabled, password_reset: passwordHash !== undefined, revoked_token_ids: revoked },
      });
      return user;
    });
  }

  /** Removes a user with their sessions and tokens. Nobody removes themselves, and the last admin stays. */
  async remove(ref: string, actor: Actor, actorUserId?: number): Promise<void> {
    const target = await this.get(ref);
    if (actorUserId !== undefined && target.id === actorUserId) throw new ConflictError('you cannot remove your own account');
    await this.storage.transaction(async (tx) => {
      if (target.role === 'admin' && !target.disabled && (await tx.users.countActiveAdmins()) <= 1) {
        throw new ConflictError(`${target.username} is the last admin; make another admin first`);
      }
      if (!(await tx.users.delete(target.id))) throw new NotFoundError(`user ${ref} not found`);
      await tx.events.record({ kind: 'user.deleted', actor, message: `user ${target.username} removed`, data: { user_id: target.id, username: target.username } });
    });
  }

  /**
   * A signed-in user changes their own password: their other sessions end and their API tokens are
   * revoked, except the credential making the request and, with `keepTokens`, the tokens.
   */
  async changeOwnPassword(
    userId: number,
    current: string,
    next: string,
    actor: Actor,
    keep: { sessionHash?: string; tokenId?: number; keepTokens?: boolean } = {},
  ): Promise<void> {
    const user = await this.storage.users.findById(userId);
    if (!user) throw new UnauthorizedError('your account no longer exists');
    if (!(await this.hasher.verify(user.password_hash, current))) throw new ForbiddenError('the current password is wrong');
    checkPasswordStrength(next, 'the new password');
    const passwordHash = await this.hasher.hash(next);
    await this.storage.transaction(async (tx) => {
      const now = nowIso();
      await tx.users.update(userId, { passwordHash, now });
      await tx.credentials.deleteSessionsOf(userId, keep.sessionHash);
      const revoked = keep.keepTokens === true ? [] : await tx.credentials.revokeTokensOf(userId, now, keep.tokenId);
      await tx.events.record({
        kind: 'user.password_changed',
        actor,
        message: `${user.username} changed their password${revoked.length > 0 ? `; ${revoked.length} API token(s) revoked` : ''}`,
        data: { user_id: userId, username: user.username, revoked_token_ids: revoked },
      });
    });
  }

  /**
   * On a database without users, creates `admin` with `password`; returns false when a user exists.
   * Safe when several processes start at once: only one insert wins.
   */
  async createFirstAdmin(password: string, actor: Actor): Promise<boolean> {
    if ((await this.storage.users.count()) > 0) return false;
    try {
      await this.create({ username: 'admin', role: 'admin', password }, actor);
      return true;
    } catch (err) {
      if (err instanceof ConflictError) return false;
      throw err;
    }
  }
}

function strip(user: User & { password_hash?: string }): User {
  const { password_hash: _hash, ...rest } = user;
  return rest;
}
