import type { Kysely } from 'kysely';
import type { SettingStore } from '../core/ports.ts';
import type { Schema } from './schema.ts';

export class SqlSettingStore implements SettingStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async get(name: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
    return row?.value;
  }

  async put(name: string, value: string, now: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ name, value, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: now }))
      .execute();
  }
}
