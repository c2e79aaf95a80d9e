import { migrate, openDatabase } from '../src/storage/database.ts';
import { freshSqlite } from '../src/testing/databases.ts';
import { seedFleet, FLEET_TAG_PREFIX, FLEET_TAG_WIDTH } from './fleet.ts';
import { startMetal } from './metal-process.ts';
import { runWrk, pathGenerator, errorCount } from './wrk.ts';
import { cleanupAll } from './cleanup.ts';
import { mkdtempSync } from 'node:fs';
const work = mkdtempSync('/tmp/exp/w-');
const database = freshSqlite();
const db = await openDatabase(database.url);
await migrate(db);
await seedFleet(db, { count: 10000, imagesDir: work + '/images' });
await db.close();
const lua = pathGenerator({ before: '/nixos/machines/', prefix: FLEET_TAG_PREFIX, width: FLEET_TAG_WIDTH, count: 10000, after: '.ipxe' });
for (const ms of process.argv.slice(2)) {
  const s = await startMetal({ args: [], script: new URL('./.exp-boot-server.ts', import.meta.url).pathname, env: { METAL_DATABASE_URL: database.url, METAL_IMAGES_DIR: work + '/images', METAL_BOOT_URL: 'http://127.0.0.1:8081', METAL_DATA_DIR: work, EXP_LAST_SEEN_MS: ms } });
  const load = { url: s.addresses.boot!, connections: 500, threads: 1, luaRequest: lua, workDir: work };
  await runWrk({ ...load, durationSeconds: 3 });
  for (const pause of [250, undefined]) {
    const r = await runWrk({ ...load, durationSeconds: 15, ...(pause ? { pauseMs: pause } : {}) });
    console.log(`lastSeen ${ms} ms, ${pause ? 'paced' : 'saturated'}: ${r.requestsPerSecond.toFixed(0)} req/s p50 ${r.p50Ms} p90 ${r.p90Ms} p99 ${r.p99Ms} max ${r.maxMs} errors ${errorCount(r)}`);
  }
  await s.stop();
}
await cleanupAll();
await database.cleanup();
