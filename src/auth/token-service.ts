import { ForbiddenError, InvalidInputError, NotFoundError } from '../core/errors.ts';
import { nowIso, roleAtLeast, type Actor, type Role } from '../core/types.ts';
import type { Storage } from '../core/ports.ts';
import type { ApiToken } from '../core/types.ts';
import { API_TOKEN_PREFIX, generateToken, hashToken } from './opaque-token.ts';
import { checkRole } from './user-service.ts';

const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A just-created token: the secret is in this response and nowhere else, ever. */
export interface CreatedToken extends ApiToken {
  token: string;
}

/** Who is asking, for the token rules: their user id, and the role they act with now. */
export interface TokenRequester {
  userId: number;
  actor: Actor;
}

/** Named API tokens: created with a role no higher than the creator's, listed, revoked. */
export class TokenService {
  constructor(private readonly storage: Storage) {}

  async create(requester: TokenRequester, input: { name: string; role?: string; expires_at?: string | null }): Promise<CreatedToken> {
    if (typeof input.name !== 'string' || !TOKEN_NAME.test(input.name)) {
      throw new InvalidInputError('name must be 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit');
    }
    const have = requester.actor.role;
    const role = (input.role ?? have) as Role;
    checkRole(role);
    if (!roleAtLeast(have, role)) throw new ForbiddenError(`a token cannot have a higher role than its creator (${have ?? 'none'})`);
    let expiresAt: string | null = null;
    if (input.expires_at !== undefined && input.expires_at !== null) {
      const t = Date.parse(input.expires_at);
      if (Number.isNaN(t)) throw new InvalidInputError('expires_at must be an ISO 8601 time, e.g. 2030-01-01T00:00:00Z');
      if (t <= Date.now()) throw new InvalidInputError('expires_at must be in the future');
      expiresAt = new Date(t).toISOString();
    }
    const owner = await this.storage.users.findById(requester.userId);
    if (!owner) throw new NotFoundError('your account no longer exists');
    const token = generateToken(API_TOKEN_PREFIX);
    const created = await this.storage.credentials.insertToken({ tokenHash: hashToken(token), userId: owner.id, name: input.name, role, now: nowIso(), expiresAt });
    await this.storage.events.record({
      kind: 'token.created',
      actor: requester.actor,
      message: `API token ${owner.username}/${created.name} created with role ${role}`,
      data: { token_id: created.id, name: created.name, owner: owner.username, role, expires_at: expiresAt },
    });
    return { ...created, token };
  }

  /** An admin sees every token; others see their own. */
  list(requester: TokenRequester, limit = 50, offset = 0): Promise<{ items: ApiToken[]; total: number }> {
    return this.storage.credentials.listTokens(requester.actor.role === 'admin' ? undefined : requester.userId, limit, offset);
  }

  /** Revokes a token of one's own, or anyone's for an admin. Another user's token is "not found" to a non-admin. */
  async revoke(requester: TokenRequester, id: number): Promise<ApiToken> {
    const token = await this.storage.credentials.getToken(id);
    const owner = token ? await this.storage.users.findByUsername(token.owner) : undefined;
    if (!token || (requester.actor.role !== 'admin' && owner?.id !== requester.userId)) throw new NotFoundError(`token ${id} not found`);
    if (token.revoked_at === null) {
      const now = nowIso();
      if (await this.storage.credentials.revokeToken(id, now)) {
        await this.storage.events.record({
          kind: 'token.revoked',
          actor: requester.actor,
          message: `API token ${token.owner}/${token.name} revoked`,
          data: { token_id: id, name: token.name, owner: token.owner },
        });
      }
    }
    return (await this.storage.credentials.getToken(id))!;
  }
}
