import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isBuildFinished } from '../../src/core/lifecycle.ts';
import type { Build } from '../../src/core/types.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { SqlStorage } from '../../src/storage/storage.ts';
import { enrollmentPayload } from '../support/context.ts';
import { freshPostgres } from '../support/databases.ts';
import { fleetTag, percentile, runFleet } from './support/machine-fleet.ts';
import { OFFLINE_NIX_CONFIG } from '../../src/builder/nix-build.ts';
import { CLUSTER_NIX_ENTRY, killReplica, migrateCluster, startReplica, stopReplica, writeRegistrationImage, type ClusterOptions, type Replica } from './support/metal-cluster.ts';
import { freePort, startLoadBalancer, type LoadBalancer } from './support/nginx.ts';
import { clusterSkipReason, nginxPath } from './support/requirements.ts';
import { describeAnswers, probeEnrollRate, probeLoginThrottle } from './support/limit-probe.ts';

const MACHINES = 2000;
const CONCURRENCY = 48;
const BUILDS = 20;
/** The storm's progress at which one API, one boot server and one builder are SIGKILLed. */
const KILL_AFTER = 600;
const LEASE_SECONDS = '2';
/** METAL_ENROLL_RATE of every replica; each simulated machine enrolls from its own address. */
const ENROLL_RATE = 5;
/** The sign-in throttle's default budget per (address, user). */
const LOGIN_FAILURES_ALLOWED = 5;

const skip = await clusterSkipReason();

/** Follows a build log on one API replica; resolves with the whole streamed text. */
async function followLog(apiUrl: string, token: string, buildId: number): Promise<string> {
  const res = await fetch(`${apiUrl}/api/v1/builds/${buildId}/log?follow=1`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(180_000),
  });
  assert.equal(res.status, 200);
  return res.text();
}

async function api(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

describe('scale-out on PostgreSQL: 2 API, 2 boot and 2 builder processes behind nginx', { skip }, () => {
  const workDir = mkdtempSync(join(tmpdir(), 'metal-cluster-'));
  const database = freshPostgres();
  const replicas: Replica[] = [];
  let lb: LoadBalancer | undefined;
  after(async () => {
    await Promise.all(replicas.map(stopReplica));
    await lb?.stop();
    await database.cleanup();
    rmSync(workDir, { recursive: true, force: true });
  });

  test('a boot storm of 2,000 machines and 20 builds survive SIGKILL of one replica of each role', { timeout: 300_000 }, async () => {
    const imagesDir = join(workDir, 'images');
    const { initrdBytes } = writeRegistrationImage(imagesDir);
    const adminPassword = 'cluster-admin-password';
    const options: ClusterOptions = {
      databaseUrl: database.url,
      imagesDir,
      workDir,
      bootUrl: 'http://127.0.0.1:1', // replaced below, once nginx has its port
      adminPassword,
      env: {
        METAL_SECRET_KEY: 'aa'.repeat(32),
        METAL_NIX_ENTRY: CLUSTER_NIX_ENTRY,
        METAL_BUILD_LEASE_SECONDS: LEASE_SECONDS,
        METAL_BUILD_CONCURRENCY: '2',
        METAL_ENROLL_RATE: String(ENROLL_RATE),
        // nginx stands in for the site's proxy: the replicas believe the client address it passes on.
        METAL_TRUST_PROXY: '127.0.0.1',
        // The stand-in builds from host tools: offline, without build users or sandbox.
        NIX_CONFIG: process.env.NIX_CONFIG ?? OFFLINE_NIX_CONFIG,
        METAL_BUILD_UNSANDBOXED: '1',
      },
    };

    // Migrate once (the Job), start one API (it creates the first admin), then the rest at once.
    const t0 = Date.now();
    await migrateCluster(options);
    // nginx needs the replicas' ports and the replicas need nginx's boot address: take the ports first.
    const lbPorts = { api: await freePort(), boot: await freePort() };
    options.bootUrl = `http://127.0.0.1:${lbPorts.boot}`;
    replicas.push(await startReplica(options, 'api-1', 'api'));
    replicas.push(
      ...(await Promise.all([
        startReplica(options, 'api-2', 'api'),
        startReplica(options, 'boot-1', 'boot'),
        startReplica(options, 'boot-2', 'boot'),
        startReplica(options, 'builder-1', 'builder'),
        startReplica(options, 'builder-2', 'builder'),
      ])),
    );
    const [api1, api2, boot1, boot2, builder1, builder2] = replicas as [Replica, Replica, Replica, Replica, Replica, Replica];
    lb = await startLoadBalancer(nginxPath()!, join(workDir, 'nginx'), { api: [api1.url!, api2.url!], boot: [boot1.url!, boot2.url!] }, lbPorts);
    assert.equal(lb.bootUrl, options.bootUrl);
    const startedMs = Date.now() - t0;

    const login = await fetch(`${lb.apiUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    assert.equal(login.status, 200);
    const { token } = (await login.json()) as { token: string };

    // The sign-in throttle and the enrollment rate limit hold across the replicas (their buckets are
    // in the database): failures spread over api-1 and api-2, then the next try through each of them
    // and through nginx; enrollments from one address spread over all four listeners.
    const apis = [{ name: 'api-1', url: api1.url! }, { name: 'api-2', url: api2.url! }];
    const throttle = await probeLoginThrottle(apis, '198.51.100.77', LOGIN_FAILURES_ALLOWED, adminPassword);
    const throttleAfter = [...throttle.after, ...(await probeLoginThrottle([{ name: 'nginx', url: lb.apiUrl }], '198.51.100.77', 0, adminPassword)).after];
    const listeners = [{ name: 'boot-1', url: boot1.url! }, { name: 'boot-2', url: boot2.url! }, ...apis];
    const enrollProbe = await probeEnrollRate(listeners, '192.0.2.99', 2 * ENROLL_RATE, 'LIMIT');
    const enrollAccepted = enrollProbe.filter((a) => a.status === 201).length;
    const limitFigures = [
      `scale-out: ${LOGIN_FAILURES_ALLOWED} failed sign-ins from one address: ${describeAnswers(throttle.failed)}; then the right password: ${describeAnswers(throttleAfter)}`,
      `scale-out: ${2 * ENROLL_RATE} enrollments from one address at METAL_ENROLL_RATE ${ENROLL_RATE}: ${enrollAccepted} accepted; ${describeAnswers(enrollProbe)}`,
    ];
    for (const line of limitFigures) console.log(line);
    assert.deepEqual(throttle.failed.map((a) => a.status), Array<number>(LOGIN_FAILURES_ALLOWED).fill(401));
    assert.deepEqual(throttleAfter.map((a) => a.status), [429, 429, 429], 'every replica refuses the next sign-in');
    assert.deepEqual(enrollProbe.map((a) => a.status), [...Array<number>(ENROLL_RATE).fill(201), ...Array<number>(ENROLL_RATE).fill(429)]);

    // 20 machines to build: enrolled through the boot servers and configured through the API.
    const buildTags: string[] = [];
    for (let i = 0; i < BUILDS; i++) {
      const tag = `BUILD${String(i).padStart(2, '0')}`;
      const enrolled = await fetch(`${lb.bootUrl}/api/v1/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `10.200.0.${i + 1}` },
        body: JSON.stringify(enrollmentPayload(tag)),
      });
      assert.equal(enrolled.status, 201);
      const config = `{ ... }:\n{\n  # cluster build ${i} ${randomBytes(8).toString('hex')}\n  networking.firewall.enable = true;\n}\n`;
      assert.equal((await api(lb.apiUrl, token, 'PUT', `/api/v1/machines/${tag}`, { hostname: `node-${i}`, nixos_config: config })).status, 200);
      buildTags.push(tag);
    }
    const buildIds: number[] = [];
    let followed: Promise<string> | undefined;

    const storage = new SqlStorage(await openDatabase(database.url));
    try {
      // Well into the storm: request the builds, follow the last one's log through api-2 (the replica
      // that survives), and kill one replica of each role the moment builder-1 has claimed a build.
      let killed: Promise<{ atMs: number; builds: number[] }> | undefined;
      const buildAndKill = async () => {
        for (const tag of buildTags) {
          const build = await api(lb!.apiUrl, token, 'POST', `/api/v1/machines/${tag}/build`);
          assert.equal(build.status, 202, JSON.stringify(build.json));
          buildIds.push((build.json as Build).id);
        }
        followed = followLog(api2.url!, token, buildIds.at(-1)!);
        const deadline = Date.now() + 60_000;
        let held: number[] = [];
        while (Date.now() < deadline) {
          const rows = await Promise.all(buildIds.map((id) => storage.builds.findRecord(id)));
          // Claimed under a second ago: its stand-in sleeps 3 s in all, so it cannot end before the kill.
          held = rows
            .filter((r) => r?.status === 'building' && r.lease_owner === builder1.builderName && r.started_at && Date.now() - Date.parse(r.started_at) < 1000)
            .map((r) => Number(r!.id));
          if (held.length > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const atMs = Date.now() - t0;
        await Promise.all([killReplica(api1), killReplica(boot1), killReplica(builder1)]);
        return { atMs, builds: held };
      };
      const fleet = await runFleet({
        bootUrl: lb.bootUrl,
        machines: MACHINES,
        concurrency: CONCURRENCY,
        initrdBytes,
        milestone: { after: KILL_AFTER, run: () => void (killed = buildAndKill()) },
      });
      assert.ok(killed, 'the replicas were killed during the storm');
      const kill1 = await killed;

      // Every build ends; then check each one's history.
      const deadline = Date.now() + 120_000;
      let builds: Build[] = [];
      for (;;) {
        builds = (await Promise.all(buildIds.map((id) => storage.builds.findById(id)))) as Build[];
        if (builds.every((b) => isBuildFinished(b.status))) break;
        assert.ok(Date.now() < deadline, `builds still running: ${builds.filter((b) => !isBuildFinished(b.status)).map((b) => `${b.id} ${b.status}`).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const buildsDoneMs = Date.now() - t0;
      assert.ok(followed);
      const log = await followed;

      const figures = [
        `scale-out: 6 metal processes and nginx ready in ${startedMs} ms`,
        `scale-out: ${fleet.machines} machines at ${CONCURRENCY} at a time in ${fleet.elapsedMs} ms: ${fleet.scriptRequests} script requests (p50 ${percentile(fleet.scriptLatencies, 50).toFixed(1)} ms, p99 ${percentile(fleet.scriptLatencies, 99).toFixed(1)} ms), ${fleet.imageRequests} initrd downloads (${(fleet.imageBytes / 1048576).toFixed(0)} MiB), ${fleet.enrollRequests} enrollments, ${fleet.acknowledged.size} acknowledged`,
        `scale-out: api-1, boot-1 and builder-1 SIGKILLed at ${kill1.atMs} ms (builder-1 held build ${kill1.builds.join(', ')}); ${fleet.retried} requests needed their one retry, ${fleet.unanswered.length} unanswered after it`,
        `scale-out: ${builds.length} builds finished by ${buildsDoneMs} ms: ${builds.filter((b) => b.status === 'success').length} succeeded, ${builds.filter((b) => b.attempts > 1).length} taken over after the lease (${LEASE_SECONDS} s)`,
      ];
      for (const line of figures) console.log(line);

      // Every script, image and enrollment request answered, at most after the client's one retry.
      assert.deepEqual(fleet.unanswered.slice(0, 10), []);
      assert.equal(fleet.acknowledged.size, MACHINES);

      // Every acknowledged enrollment stored exactly once.
      const enrolledEvents = await storage.events.list({ kind: 'machine.enrolled', limit: 1 });
      assert.equal(enrolledEvents.total, MACHINES + BUILDS + ENROLL_RATE, 'one enrollment event per machine');
      const stored = new Map<string, number>();
      for (let offset = 0; ; offset += 500) {
        const page = await api(lb.apiUrl, token, 'GET', `/api/v1/machines?search=FLEET&limit=500&offset=${offset}`);
        assert.equal(page.status, 200);
        const items = (page.json as { items: Array<{ service_tag: string }> }).items;
        for (const m of items) stored.set(m.service_tag, (stored.get(m.service_tag) ?? 0) + 1);
        if (items.length < 500) break;
      }
      assert.equal(stored.size, MACHINES);
      for (let i = 0; i < MACHINES; i++) assert.equal(stored.get(fleetTag(i)), 1, fleetTag(i));

      // Every build finished exactly once, its image published and its machine pointing at it.
      assert.ok(kill1.builds.length > 0, 'builder-1 was killed in the middle of a build');
      for (const b of builds) {
        assert.equal(b.status, 'success', `build ${b.id}: ${b.error ?? ''}`);
        const succeeded = await storage.events.list({ buildId: b.id, kind: 'build.succeeded' });
        assert.equal(succeeded.total, 1, `build ${b.id} succeeded once`);
        const tag = `BUILD${String(buildIds.indexOf(b.id)).padStart(2, '0')}`;
        assert.equal(realpathSync(join(imagesDir, 'machines', tag)), realpathSync(join(imagesDir, 'builds', String(b.id))));
        assert.match(readFileSync(join(imagesDir, 'builds', String(b.id), 'bzImage'), 'utf8'), new RegExp(`METAL-CLUSTER-KERNEL node-${buildIds.indexOf(b.id)} ${tag}`));
      }
      for (const id of kill1.builds) {
        const b = builds.find((x) => x.id === id)!;
        assert.equal(b.attempts, 2, `build ${id} was tried again`);
        assert.match(b.log_output, new RegExp(`builder ${builder1.builderName} was lost \\(its lease expired`));
        assert.match(b.log_output, new RegExp(`build ${id} started by builder:${builder2.builderName}|${builder2.builderName}`));
        const retried = await storage.events.list({ buildId: id, kind: 'build.retried' });
        assert.equal(retried.total, 1);
      }

      // The log followed through api-2 streamed what a builder process wrote.
      const lastHost = `node-${BUILDS - 1}`;
      for (let step = 1; step <= 6; step++) assert.ok(log.includes(`cluster-standin: ${lastHost} step ${step} of 6`), `step ${step} in the followed log`);
      assert.match(log, new RegExp(`cluster-standin: ${lastHost} done`));
    } finally {
      await storage.database.close();
    }
  });
});
