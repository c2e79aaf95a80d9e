import { sql, type Kysely, type Selectable } from 'kysely';
import { DuplicateKeyError, StillReferencedError, type ProfileStore } from '../core/ports.ts';
import type { Profile, ProfileFields } from '../core/profile.ts';
import { parseJson } from './rows.ts';
import type { ProfilesTable, Schema } from './schema.ts';
import { isForeignKeyViolation, isUniqueViolation } from './unique-violation.ts';

/** The profiles table. */
export class SqlProfileStore implements ProfileStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async list(): Promise<Profile[]> {
    const [rows, counts] = await Promise.all([
      this.db.selectFrom('profiles').selectAll().orderBy('name').execute(),
      this.db
        .selectFrom('machines')
        .select([
          'profile',
          (eb) => eb.fn.countAll<string | number>().as('n'),
          sql<string | number>`sum(case when desired_hash is not null and (built_hash is null or built_hash <> desired_hash) then 1 else 0 end)`.as('stale'),
        ])
        .where('profile', 'is not', null)
        .groupBy('profile')
        .execute(),
    ]);
    const byName = new Map(counts.map((c) => [c.profile, c]));
    return rows.map((r) => {
      const c = byName.get(r.name);
      return { ...toProfile(r), machines: Number(c?.n ?? 0), out_of_date: Number(c?.stale ?? 0) };
    });
  }

  async findByName(name: string): Promise<Profile | undefined> {
    const row = await this.db.selectFrom('profiles').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toProfile(row);
  }

  async insert(name: string, f: Required<ProfileFields>, now: string): Promise<Profile> {
    try {
      const row = await this.db
        .insertInto('profiles')
        .values({ name, ...f, kernel_params: JSON.stringify(f.kernel_params), auto_build: f.auto_build ? 1 : 0, skip_boot_check: f.skip_boot_check ? 1 : 0, created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toProfile(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`profile ${name} exists`, { cause: err });
      throw err;
    }
  }

  async update(name: string, f: ProfileFields, now: string): Promise<Profile | undefined> {
    const { kernel_params: params, auto_build: auto, skip_boot_check: skip, ...rest } = f;
    const row = await this.db
      .updateTable('profiles')
      .set({
        ...rest,
        ...(params !== undefined ? { kernel_params: JSON.stringify(params) } : {}),
        ...(auto !== undefined ? { auto_build: auto ? 1 : 0 } : {}),
        ...(skip !== undefined ? { skip_boot_check: skip ? 1 : 0 } : {}),
        updated_at: now,
      })
      .where('name', '=', name)
      .returningAll()
      .executeTakeFirst();
    return row && toProfile(row);
  }

  async delete(name: string): Promise<boolean> {
    try {
      const result = await this.db.deleteFrom('profiles').where('name', '=', name).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new StillReferencedError(`profile ${name} is still used`, { cause: err });
      throw err;
    }
  }

  async usageCount(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('machines')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('profile', '=', name)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

function toProfile(row: Selectable<ProfilesTable>): Profile {
  const params = parseJson(row.kernel_params);
  return {
    id: Number(row.id),
    name: row.name,
    description: row.description,
    nixos_config: row.nixos_config,
    hostname_pattern: row.hostname_pattern,
    kernel_params: Array.isArray(params) ? params.filter((p): p is string => typeof p === 'string') : [],
    auto_build: Boolean(row.auto_build),
    health_check: row.health_check,
    skip_boot_check: Boolean(Number(row.skip_boot_check)),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}
