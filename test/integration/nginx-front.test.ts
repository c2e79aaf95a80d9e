import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderNginxFront } from '../../src/boot/nginx-front.ts';
import { migrate, openDatabase } from '../../src/storage/database.ts';
import { seedFleet, type Fleet } from '../../bench/fleet.ts';
import { startMetal, type MetalProcess } from '../../bench/metal-process.ts';
import { startNginx, type NginxProcess } from '../../bench/nginx-process.ts';
import { findExecutable } from '../../src/builder/nix-build.ts';
import { freshSqlite } from '../support/databases.ts';

// nginx in front of a real `metal boot`, with the configuration `metal image nginx-config` writes:
// scripts pass through, image files come from nginx only for keys metal boot knows, and nothing
// else under /images/ is served.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function skipReason(): string | undefined {
  if (findExecutable('nginx', `${process.env.PATH ?? ''}:/usr/sbin:/sbin`)) return undefined;
  if (process.env.CI === 'true') throw new Error('required in CI: nginx (apt-get install nginx-light)');
  console.warn('\n*** SKIPPING the nginx front test: no nginx (apt-get install nginx-light) ***\n');
  return 'no nginx';
}

describe('nginx in front of metal boot (metal image nginx-config)', { skip: skipReason(), timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'metal-nginx-front-'));
  const imagesDir = join(dir, 'images');
  const database = freshSqlite();
  let fleet: Fleet;
  let metal: MetalProcess;
  let nginx: NginxProcess;
  let imageKey: string;

  before(async () => {
    const db = await openDatabase(database.url);
    try {
      await migrate(db);
      fleet = await seedFleet(db, { count: 4, imagesDir });
      const row = await db.db.selectFrom('builds').select('image_key').where('id', '=', fleet.sampleReady.buildId).executeTakeFirstOrThrow();
      imageKey = row.image_key;
    } finally {
      await db.close();
    }
    metal = await startMetal({ args: ['boot'], env: { METAL_DATABASE_URL: database.url, METAL_IMAGES_DIR: imagesDir, METAL_BOOT_URL: 'http://10.0.2.100', METAL_DATA_DIR: join(dir, 'data') } });
    nginx = await startNginx({ prefix: join(dir, 'nginx'), root: dir, sendfile: true, front: { upstream: new URL(metal.addresses.boot!).host, imagesDir } });
  });
  after(async () => {
    await nginx?.stop();
    await metal?.stop();
    await database.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('scripts pass through: the same script as from metal boot itself, a fresh token each time', async () => {
    const path = `/nixos/machines/${fleet.sampleReady.tag}.ipxe`;
    const [direct, fronted] = await Promise.all([fetch(`${metal.addresses.boot}${path}`), fetch(`${nginx.url}${path}`)]);
    assert.equal(fronted.status, 200);
    const strip = (text: string) => text.replace(/metal\.boot_token=\S+/g, 'metal.boot_token=T');
    const text = await fronted.text();
    assert.match(text, new RegExp(`metal\\.build_id=${fleet.sampleReady.buildId} `));
    assert.equal(strip(text), strip(await direct.text()));
  });

  test('a build’s files by its key come from the build’s directory, with ranges and conditional requests', async () => {
    const dirOfBuild = join(imagesDir, 'builds', String(fleet.sampleReady.buildId));
    for (const file of ['bzImage', 'initrd', 'boot.json']) {
      const res = await fetch(`${nginx.url}/images/builds/${imageKey}/${file}`);
      assert.equal(res.status, 200, file);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), readFileSync(join(dirOfBuild, file)), file);
      if (file === 'boot.json') assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    }
    const ranged = await fetch(`${nginx.url}/images/builds/${imageKey}/bzImage`, { headers: { range: 'bytes=0-6' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'bzImage');
    const etag = (await fetch(`${nginx.url}/images/builds/${imageKey}/bzImage`, { method: 'HEAD' })).headers.get('etag');
    assert.ok(etag);
    assert.equal((await fetch(`${nginx.url}/images/builds/${imageKey}/bzImage`, { headers: { 'if-none-match': etag } })).status, 304);
  });

  test('the registration image is served from its directory', async () => {
    const res = await fetch(`${nginx.url}/images/registration/initrd`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), readFileSync(join(imagesDir, 'registration', 'initrd')));
  });

  test('nothing else under /images/ is served: unknown keys, build ids, machine links, dot files, escapes', async () => {
    const buildId = fleet.sampleReady.buildId;
    writeFileSync(join(imagesDir, 'builds', String(buildId), '.hidden'), 'secret');
    const paths = [
      `/images/builds/${'A'.repeat(22)}/bzImage`,
      `/images/builds/${buildId}/bzImage`,
      `/images/machines/${fleet.sampleReady.tag}/bzImage`,
      `/images/builds/${imageKey}/.hidden`,
      `/images/builds/${imageKey}/../../machines/${fleet.sampleReady.tag}/bzImage`,
      `/images/builds/${imageKey}/%2e%2e%2fboot.json`,
      `/images/builds/${imageKey}/`,
      `/images/builds/${imageKey}`,
      '/images/registration/',
      '/images/',
      `/boot/image-key/${imageKey}/../x`,
    ];
    for (const path of paths) {
      const res = await fetch(`${nginx.url}${path}`, { redirect: 'manual' });
      const body = await res.text();
      assert.equal(res.status, 404, `${path}: ${res.status} ${body.slice(0, 200)}`);
      assert.doesNotMatch(body, /secret|bzImage of/, path);
    }
    // The key check answers nginx's subrequests only: a client reaching it through nginx gets 404.
    assert.equal((await fetch(`${nginx.url}/boot/image-key`)).status, 404);
    assert.equal((await fetch(`${nginx.url}/boot/image-key/${imageKey}`)).status, 404);
  });

  test('metal boot answers the key check in nginx’s auth_request protocol', async () => {
    const known = await fetch(`${metal.addresses.boot}/boot/image-key/${imageKey}`);
    assert.equal(known.status, 204);
    assert.equal(known.headers.get('x-metal-build-id'), String(fleet.sampleReady.buildId));
    assert.equal((await fetch(`${metal.addresses.boot}/boot/image-key/${'B'.repeat(22)}`)).status, 403);
    assert.equal((await fetch(`${metal.addresses.boot}/boot/image-key/not%20a%20key`)).status, 403);
  });

  test('the committed deploy/nginx/metal-boot.conf is what the command writes for the defaults, and nginx accepts it', () => {
    const committed = readFileSync(join(ROOT, 'deploy/nginx/metal-boot.conf'), 'utf8');
    assert.equal(committed, renderNginxFront({ listen: '80', upstream: '127.0.0.1:8081', imagesDir: '/var/lib/metal/images' }));
    const prefix = join(dir, 'syntax');
    const conf = join(dir, 'syntax.conf');
    writeFileSync(conf, `pid ${prefix}.pid;\nerror_log stderr;\nevents {}\nhttp {\n${committed}}\n`);
    const r = spawnSync('nginx', ['-t', '-p', dir, '-c', conf], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });
});
