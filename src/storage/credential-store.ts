import type { Kysely, Selectable } from 'kysely';
import type { CredentialStore } from '../core/ports.ts';
import type { ApiToken, Credential, Role } from '../core/types.ts';
import type { ApiTokensTable } from './auth-schema.ts';
import type { Schema } from './schema.ts';

function toApiToken(row: Selectable<ApiTokensTable> & { owner: string }): ApiToken {
  return {
    id: Number(row.id),
    name: row.name,
    role: row.role as Role,
    owner: row.owner,
    created_at: row.created_at,
    expires_at: row.expires_at,
    last_used_at: row.last_used_at,
    revoked_at: row.revoked_at,
  };
}

/** The columns a session or token lookup reads about the credential and its owner. */
interface CredentialRow {
  id: number;
  user_id: number;
  expires_at: string | null;
  last_used_at: string | null;
  username: string;
  role: string;
  disabled: number | boolean;
}

function toCredential(row: CredentialRow): Credential {
  return {
    id: Number(row.id),
    userId: Number(row.user_id),
    username: row.username,
    userRole: row.role as Role,
    disabled: Number(row.disabled) === 1,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
  };
}

/** The sessions and api_tokens tables: both looked up by the SHA-256 of the presented token. */
export class SqlCredentialStore implements CredentialStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async insertSession(s: { tokenHash: string; userId: number; address: string | null; now: string; expiresAt: string }): Promise<void> {
    await this.db
      .insertInto('sessions')
      .values({ token_hash: s.tokenHash, user_id: s.userId, address: s.address, created_at: s.now, expires_at: s.expiresAt, last_used_at: s.now })
      .execute();
  }

  async findSession(tokenHash: string): Promise<Credential | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .select(['sessions.id', 'sessions.user_id', 'sessions.expires_at', 'sessions.last_used_at', 'users.username', 'users.role', 'users.disabled'])
      .where('sessions.token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row && toCredential(row);
  }

  async deleteSession(tokenHash: string): Promise<boolean> {
    const r = await this.db.deleteFrom('sessions').where('token_hash', '=', tokenHash).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Ends every session of a user, except the one with `keepHash` (the caller's own). */
  async deleteSessionsOf(userId: number, keepHash?: string): Promise<void> {
    let q = this.db.deleteFrom('sessions').where('user_id', '=', userId);
    if (keepHash !== undefined) q = q.where('token_hash', '!=', keepHash);
    await q.execute();
  }

  async deleteExpiredSessions(now: string): Promise<void> {
    await this.db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
  }

  async touchSession(id: number, now: string): Promise<void> {
    await this.db.updateTable('sessions').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  async insertToken(t: { tokenHash: string; userId: number; name: string; role: Role; now: string; expiresAt: string | null }): Promise<ApiToken> {
    const row = await this.db
      .insertInto('api_tokens')
      .values({ token_hash: t.tokenHash, user_id: t.userId, name: t.name, role: t.role, created_at: t.now, expires_at: t.expiresAt })
      .returning('id')
      .executeTakeFirstOrThrow();
    return (await this.getToken(Number(row.id)))!;
  }

  async findToken(tokenHash: string): Promise<Credential | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .select([
        'api_tokens.id',
        'api_tokens.user_id',
        'api_tokens.name',
        'api_tokens.role as token_role',
        'api_tokens.expires_at',
        'api_tokens.last_used_at',
        'api_tokens.revoked_at',
        'users.username',
        'users.role',
        'users.disabled',
      ])
      .where('api_tokens.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (!row) return undefined;
    return { ...toCredential(row), tokenName: row.name, tokenRole: row.token_role as Role, revokedAt: row.revoked_at };
  }

  async getToken(id: number): Promise<ApiToken | undefined> {
    const row = await this.tokens().where('api_tokens.id', '=', id).executeTakeFirst();
    return row ? toApiToken(row) : undefined;
  }

  /** Newest first; only `userId`'s when given. */
  async listTokens(userId: number | undefined, limit: number, offset: number): Promise<{ items: ApiToken[]; total: number }> {
    let q = this.tokens();
    let c = this.db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<string | number>().as('n'));
    if (userId !== undefined) {
      q = q.where('api_tokens.user_id', '=', userId);
      c = c.where('user_id', '=', userId);
    }
    const [rows, count] = await Promise.all([q.orderBy('api_tokens.id', 'desc').limit(limit).offset(offset).execute(), c.executeTakeFirstOrThrow()]);
    return { items: rows.map(toApiToken), total: Number(count.n) };
  }

  async revokeToken(id: number, now: string): Promise<boolean> {
    const r = await this.db.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async revokeTokensOf(userId: number, now: string, keepId?: number): Promise<number[]> {
    let q = this.db.updateTable('api_tokens').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null);
    if (keepId !== undefined) q = q.where('id', '!=', keepId);
    const rows = await q.returning('id').execute();
    return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
  }

  async touchToken(id: number, now: string): Promise<void> {
    await this.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  private tokens() {
    return this.db.selectFrom('api_tokens').innerJoin('users', 'users.id', 'api_tokens.user_id').selectAll('api_tokens').select('users.username as owner');
  }
}
