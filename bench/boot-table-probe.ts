// Run as a child process by bench/scenarios/boot-table.ts: `node --expose-gc --import tsx
// bench/boot-table-probe.ts <database url>`. Loads the boot server's decision table from the
// database and prints, as one JSON line, how long that took and what it costs in memory.
import { BootTable } from '../src/boot/boot-table.ts';
import { createLogger } from '../src/core/logger.ts';
import { Notifier } from '../src/core/notifier.ts';
import { SqlBootFeed } from '../src/storage/boot-feed.ts';
import { openDatabase } from '../src/storage/database.ts';

const url = process.argv[2];
if (!url) throw new Error('usage: boot-table-probe.ts <database url>');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const database = await openDatabase(url);
const logger = createLogger('silent');
const feed = new SqlBootFeed(database, url, logger);
await feed.changes(0); // warm the connection and the statement, so the load is what is timed
gc();
const before = process.memoryUsage();
const started = performance.now();
const table = new BootTable(feed, new Notifier(), logger, { pollMs: 3_600_000 });
await table.start();
const loadMs = performance.now() - started;
const probe = await table.findMachine('service_tag', 'BENCH00001');
gc();
const after = process.memoryUsage();
console.log(JSON.stringify({ machines: table.size, loadMs, heapBytes: after.heapUsed - before.heapUsed, rssBytes: after.rss - before.rss, found: probe !== undefined }));
await table.close();
await database.close();
