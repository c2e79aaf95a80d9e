import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Database } from '../src/storage/database.ts';
import { enrollmentPayload } from '../test/support/context.ts';
import { searchTextOf } from '../src/storage/machine-store.ts';

/** The service tag of fleet machine `n` (1-based): `BENCH00001` … */
export function fleetTag(n: number): string {
  return `BENCH${String(n).padStart(5, '0')}`;
}

/** Fleet tags are the prefix and a zero-padded number of this width, so load generators can make them up. */
export const FLEET_TAG_PREFIX = 'BENCH';
export const FLEET_TAG_WIDTH = 5;

/** How many machines to write; every even-numbered one gets a published image (status ready), the rest wait for one. */
export interface FleetOptions {
  count: number;
  imagesDir: string;
}

/** What was seeded, with one machine of each kind for checking the scripts they get. */
export interface Fleet {
  count: number;
  withImage: number;
  /** A machine that boots its own image, and its build id. */
  sampleReady: { tag: string; buildId: number };
  /** A machine without an image (hold script). */
  sampleWaiting: { tag: string };
}

/**
 * Writes `count` machines straight into the database (much faster than enrolling them): half of them
 * `ready` with a published build whose files and boot.json exist under `imagesDir`, the rest `configured`.
 * Also writes the registration image, so unknown machines get a complete script.
 */
export async function seedFleet(database: Database, o: FleetOptions): Promise<Fleet> {
  const { db } = database;
  const now = new Date().toISOString();
  writeImage(join(o.imagesDir, 'registration'), 'registration');
  const batch = 400;
  for (let start = 1; start <= o.count; start += batch) {
    const rows = [];
    for (let n = start; n < Math.min(start + batch, o.count + 1); n++) {
      const tag = fleetTag(n);
      const mac = `52:54:00:${hex(n >> 16)}:${hex(n >> 8)}:${hex(n)}`;
      const hardware = { ...enrollmentPayload(tag).hardware, uuid: uuidFor(n) };
      const hostname = `node-${String(n).padStart(5, '0')}`;
      rows.push({
        service_tag: tag,
        mac_address: mac,
        identity_mac: mac,
        status: 'configured',
        hostname,
        search_text: searchTextOf({ service_tag: tag, hostname, mac_address: mac, manufacturer: hardware.manufacturer, model: hardware.model, hardware: JSON.stringify(hardware) }),
        description: null,
        hardware: JSON.stringify(hardware),
        manufacturer: hardware.manufacturer,
        model: hardware.model,
        system_uuid: hardware.uuid,
        nixos_config: '{ ... }:\n{\n  services.openssh.enable = true;\n}\n',
        enrolled_at: now,
        updated_at: now,
        last_seen_at: now,
      });
    }
    await db.insertInto('machines').values(rows).execute();
  }
  const even = await db
    .selectFrom('machines')
    .select(['id', 'service_tag', 'hostname', 'nixos_config'])
    .where(sql<boolean>`${sql.ref('id')} % 2 = 0`)
    .where('service_tag', 'like', `${FLEET_TAG_PREFIX}%`)
    .orderBy('id')
    .execute();
  for (let i = 0; i < even.length; i += batch) {
    const rows = even.slice(i, i + batch).map((m) => ({
      machine_id: m.id,
      status: 'success',
      config: m.nixos_config ?? '',
      hostname: m.hostname ?? '',
      service_tag: m.service_tag,
      log_output: '',
      attempts: 1,
      boot_token: randomBytes(24).toString('base64url'),
      image_key: randomBytes(16).toString('base64url'),
      created_at: now,
      started_at: now,
      completed_at: now,
      updated_at: now,
    }));
    await db.insertInto('builds').values(rows).execute();
  }
  await sql`update machines set status = 'ready',
      image_build_id = (select max(b.id) from builds b where b.machine_id = machines.id and b.status = 'success'),
      last_build_id = (select max(b.id) from builds b where b.machine_id = machines.id)
    where exists (select 1 from builds b where b.machine_id = machines.id and b.status = 'success')`.execute(db);
  const published = await db
    .selectFrom('machines')
    .select(['service_tag', 'image_build_id'])
    .where('image_build_id', 'is not', null)
    .orderBy('id')
    .execute();
  mkdirSync(join(o.imagesDir, 'machines'), { recursive: true });
  for (const m of published) {
    writeImage(join(o.imagesDir, 'builds', String(m.image_build_id)), m.service_tag);
    symlinkSync(`../builds/${m.image_build_id}`, join(o.imagesDir, 'machines', m.service_tag));
  }
  // PostgreSQL's autovacuum would vacuum and analyze within a minute of such a bulk load (the update
  // above leaves a dead version of half the rows). Without statistics the planner guesses 120 ready
  // machines of 10,000 and sorts on disk; without the vacuum no page is all-visible, so a page of ids
  // is read from the heap (3.4 ms) instead of the primary key's index alone (0.8 ms). Measure the
  // steady state.
  if (database.dialect === 'postgres') await sql`vacuum analyze`.execute(db);
  const waiting = await db.selectFrom('machines').select('service_tag').where('status', '=', 'configured').orderBy('id').executeTakeFirstOrThrow();
  const ready = published[0];
  if (!ready) throw new Error('bench: the fleet needs at least two machines');
  return {
    count: o.count,
    withImage: published.length,
    sampleReady: { tag: ready.service_tag, buildId: Number(ready.image_build_id) },
    sampleWaiting: { tag: waiting.service_tag },
  };
}

/** Writes small bzImage and initrd files and a matching boot.json, as a published build would have. */
export function writeImage(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, { size: number; sha256: string }> = {};
  for (const file of ['bzImage', 'initrd']) {
    const content = Buffer.from(`${file} of ${name}\n`);
    writeFileSync(join(dir, file), content);
    files[file] = { size: content.length, sha256: createHash('sha256').update(content).digest('hex') };
  }
  const init = `/nix/store/${createHash('sha256').update(name).digest('hex').slice(0, 32)}-nixos-system-${name.toLowerCase()}/init`;
  writeFileSync(join(dir, 'boot.json'), JSON.stringify({ init, kernel_params: ['console=ttyS0', 'loglevel=4'], files }));
}

function hex(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}

function uuidFor(n: number): string {
  const h = createHash('sha256').update(String(n)).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
