import { sql, type Kysely, type Selectable } from 'kysely';
import { DuplicateKeyError, type RuleStore } from '../core/ports.ts';
import type { Rule, RuleFields, RuleMatch, RuleSet } from '../core/rule.ts';
import { parseJson } from './rows.ts';
import type { RulesTable, Schema } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

/** The rules table. */
export class SqlRuleStore implements RuleStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async list(): Promise<Rule[]> {
    const rows = await this.db.selectFrom('rules').selectAll().orderBy('priority').orderBy('id').execute();
    return rows.map(toRule);
  }

  async findById(id: number): Promise<Rule | undefined> {
    const row = await this.db.selectFrom('rules').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRule(row);
  }

  async insert(f: RuleFields, now: string): Promise<Rule> {
    try {
      const row = await this.db.insertInto('rules').values({ ...columns(f), created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow();
      return toRule(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`rule ${f.name} exists`, { cause: err });
      throw err;
    }
  }

  async update(id: number, f: RuleFields, now: string): Promise<Rule | undefined> {
    try {
      const row = await this.db.updateTable('rules').set({ ...columns(f), updated_at: now }).where('id', '=', id).returningAll().executeTakeFirst();
      return row && toRule(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`rule ${f.name} exists`, { cause: err });
      throw err;
    }
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom('rules').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async countUsingProfile(name: string): Promise<number> {
    // `set` is JSON text written by us (columns below): the profile is found by its exact encoding.
    const needle = `%${JSON.stringify({ profile: name }).slice(1, -1)}%`;
    const rows = await this.db.selectFrom('rules').select(['set']).where('set', 'like', sql<string>`${needle}`).execute();
    return rows.filter((r) => (parseJson(r.set) as RuleSet).profile === name).length;
  }
}

function columns(f: RuleFields) {
  return { name: f.name, priority: f.priority, match: JSON.stringify(f.match), set: JSON.stringify(f.set), build: f.build ? 1 : 0, enabled: f.enabled ? 1 : 0 };
}

function toRule(row: Selectable<RulesTable>): Rule {
  return {
    id: Number(row.id),
    name: row.name,
    priority: Number(row.priority),
    match: parseJson(row.match) as RuleMatch,
    set: parseJson(row.set) as RuleSet,
    build: Boolean(row.build),
    enabled: Boolean(row.enabled),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}
