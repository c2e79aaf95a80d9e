import type { Kysely, Selectable } from 'kysely';
import { DuplicateKeyError, type UserStore } from '../core/ports.ts';
import type { Role, User, UserWithHash } from '../core/types.ts';
import type { UsersTable } from './auth-schema.ts';
import type { Schema } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

function toUser(row: Selectable<UsersTable>): User {
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
export class SqlUserStore implements UserStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async count(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async countActiveAdmins(): Promise<number> {
    const row = await this.db
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

  async findByUsername(username: string): Promise<UserWithHash | undefined> {
    const row = await this.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
    return row ? { ...toUser(row), password_hash: row.password_hash } : undefined;
  }

  async findById(id: number): Promise<UserWithHash | undefined> {
    const row = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? { ...toUser(row), password_hash: row.password_hash } : undefined;
  }

  async insert(user: { username: string; role: Role; passwordHash: string; now: string }): Promise<User> {
    try {
      const row = await this.db
        .insertInto('users')
        .values({ username: user.username, role: user.role, password_hash: user.passwordHash, created_at: user.now, updated_at: user.now })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toUser(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`user ${user.username} already exists`, { cause: err });
      throw err;
    }
  }

  async update(
    id: number,
    changes: { role?: Role; disabled?: boolean; passwordHash?: string; now: string },
  ): Promise<User | undefined> {
    const row = await this.db
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

  async delete(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
