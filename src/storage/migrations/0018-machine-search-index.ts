import type { Kysely } from 'kysely';

/**
 * A search (`?search=`, a substring anywhere in `search_text`) cannot use an index to find its
 * matches, so it reads every machine. With this index it reads the index alone (the text and the id
 * are all the search needs) instead of the table's whole rows: on 10,000 machines, SQLite 1.0 → 0.63 ms
 * and PostgreSQL 5.8–7.1 → 2.4–3.4 ms a search (an index-only scan, once vacuum has marked the
 * pages all-visible).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('machines_search').on('machines').columns(['search_text', 'id']).execute();
}
