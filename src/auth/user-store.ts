import type { Kysely, Selectable } from 'kysely';
import type { Role } from '../core/types.ts';
import type { AuthSchema, UsersTable } from './auth-schema.ts';

/** A user as the API shows it: never the password hash. */
export interface User {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  created_at: string;
  updated_at: string;
}

/** A user with the hash, for sign-in only. */
export interface UserWithHash extends User {
  password_hash: string;
}

export function toUser(row: Selectable<UsersTable>): User {
  return {
    id: Number(row.id),
    username: row.username,
    role: row.role as Role,
    disabled: Number(row.disabled) === 1,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** The users table. */
export class UserStore {
  constructor(private readonly db: Kysely<AuthSchema>) {}

  async count(db: Kysely<AuthSchema> = this.db): Promise<number> {
    const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async countActiveAdmins(db: Kysely<AuthSchema> = this.db): Promise<number> {
    const row = await db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('role', '=', 'admin')
      .where('disabled', '=', 0)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async list(limit: number, offset: number): Promise<{ items: User[]; total: number }> {
    const [rows, total] = await Promise.all([
      this.db.selectFrom('users').selectAll().orderBy('username').limit(limit).offset(offset).execute(),
      this.count(),
    ]);
    return { items: rows.map(toUser), total };
  }

  async findByUsername(username: string, db: Kysely<AuthSchema> = this.db): Promise<UserWithHash | undefined> {
    const row = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
    return row ? { ...toUser(row), password_hash: row.password_hash } : undefined;
  }

  async findById(id: number, db: Kysely<AuthSchema> = this.db): Promise<UserWithHash | undefined> {
    const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? { ...toUser(row), password_hash: row.password_hash } : undefined;
  }

  async insert(user: { username: string; role: Role; passwordHash: string; now: string }, db: Kysely<AuthSchema> = this.db): Promise<User> {
    const row = await db
      .insertInto('users')
      .values({ username: user.username, role: user.role, password_hash: user.passwordHash, created_at: user.now, updated_at: user.now })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUser(row);
  }

  async update(
    id: number,
    changes: { role?: Role; disabled?: boolean; passwordHash?: string; now: string },
    db: Kysely<AuthSchema> = this.db,
  ): Promise<User | undefined> {
    const row = await db
      .updateTable('users')
      .set({
        ...(changes.role !== undefined ? { role: changes.role } : {}),
        ...(changes.disabled !== undefined ? { disabled: changes.disabled ? 1 : 0 } : {}),
        ...(changes.passwordHash !== undefined ? { password_hash: changes.passwordHash } : {}),
        updated_at: changes.now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row ? toUser(row) : undefined;
  }

  async delete(id: number, db: Kysely<AuthSchema> = this.db): Promise<boolean> {
    const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
