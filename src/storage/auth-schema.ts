import type { Generated } from 'kysely';

/** The tables of migration 0002-auth, as stored. Times are ISO 8601 UTC strings. */
export interface UsersTable {
  id: Generated<number>;
  /** e.g. `alice` */
  username: string;
  role: string;
  /** argon2id PHC string; never leaves the server. */
  password_hash: string;
  /** 1 when the account may no longer sign in. */
  disabled: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface SessionsTable {
  id: Generated<number>;
  /** SHA-256 (hex) of the `ms_…` token; the token itself is never stored. */
  token_hash: string;
  user_id: number;
  /** Source address of the sign-in, e.g. `10.0.0.7`. */
  address: string | null;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
}

export interface ApiTokensTable {
  id: Generated<number>;
  /** The user who created the token; it never acts with a higher role than theirs. */
  user_id: number;
  /** e.g. `ci` */
  name: string;
  role: string;
  /** SHA-256 (hex) of the `mt_…` token. */
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface AuthSchema {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
}
