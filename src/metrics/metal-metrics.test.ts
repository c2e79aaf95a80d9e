import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../config/config.ts';
import { createLogger } from '../core/logger.ts';
import { buildApiServer, buildBootServer } from '../server/roles.ts';
import { startServer } from '../server/serve.ts';
import { freshSqlite } from '../../test/support/databases.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../../test/support/context.ts';
import { sampleValue } from '../../test/support/metrics.ts';
import { MetalMetrics } from './metal-metrics.ts';

const BUILDER = { kind: 'builder', name: 'builder:test' } as const;
const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;

describe('metrics of one process', () => {
  let t: TestContext;
  let api: FastifyInstance;
  let boot: FastifyInstance;
  let bootUrl: string;
  const initrd = Buffer.alloc(100_000, 7);

  before(async () => {
    t = await createTestContext(freshSqlite(), { METAL_ENROLL_RATE: '4' });
    const dir = t.ctx.images.registrationDir;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bzImage'), Buffer.alloc(5000, 1));
    writeFileSync(join(dir, 'initrd'), initrd);
    writeFileSync(join(dir, 'boot.json'), '{"kernel_params":[]}');
    api = await buildApiServer(t.ctx);
    boot = await buildBootServer(t.ctx, { registrationTtlMs: 0, machineTtlMs: 0 });
    bootUrl = await boot.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await boot.close();
    await api.close();
    await t.close();
  });

  const scrape = async () => {
    const r = await api.inject({ url: '/metrics' });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return r.body;
  };

  test('enrollments by result, boot scripts by kind, image bytes and requests, HTTP by route template', async () => {
    assert.equal((await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('MET1') })).statusCode, 201);
    assert.equal((await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('MET1') })).statusCode, 200);
    assert.equal((await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('MET2') })).statusCode, 201);
    const bad = await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: { service_tag: 'MET3' } });
    assert.equal(bad.statusCode, 400);
    // The limit is 4 a minute from one address, counted before the body is read: the fifth is refused.
    assert.equal((await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('MET4') })).statusCode, 429);

    for (const url of ['/nixos/machines/NEW1.ipxe', '/nixos/machines/NEW2.ipxe', '/nixos/machines/MET1.ipxe']) {
      assert.equal((await boot.inject({ url })).statusCode, 200);
    }
    const download = await fetch(`${bootUrl}/images/registration/initrd`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(download.status, 200);
    assert.equal((await download.arrayBuffer()).byteLength, initrd.length);
    const kernel = await fetch(`${bootUrl}/images/registration/bzImage`, { headers: { range: 'bytes=0-99' }, signal: AbortSignal.timeout(10_000) });
    assert.equal(kernel.status, 206);
    await kernel.arrayBuffer();
    const missing = await fetch(`${bootUrl}/images/registration/nothing`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();

    const text = await scrape();
    const v = (name: string, labels: Record<string, string> = {}) => sampleValue(text, name, labels);
    assert.equal(v('metal_enrollments_total', { result: 'new' }), 2);
    assert.equal(v('metal_enrollments_total', { result: 'known' }), 1);
    assert.equal(v('metal_enrollments_total', { result: 'rejected' }), 1);
    assert.equal(v('metal_enrollments_total', { result: 'rate_limited' }), 1);
    assert.equal(v('metal_enrollments_total', { result: 'conflict' }), 0, 'results that did not happen are exported as 0');
    assert.equal(v('metal_boot_scripts_total', { kind: 'registration' }), 2);
    assert.equal(v('metal_boot_scripts_total', { kind: 'hold-no-image' }), 1);
    assert.equal(v('metal_boot_image_bytes_total', { kind: 'initrd' }), initrd.length);
    assert.equal(v('metal_boot_image_bytes_total', { kind: 'kernel' }), 100);
    assert.equal(v('metal_boot_image_requests_total', { status: '200' }), 1);
    assert.equal(v('metal_boot_image_requests_total', { status: '206' }), 1);
    assert.equal(v('metal_boot_image_requests_total', { status: '404' }), 1);
    assert.equal(v('metal_http_requests_total', { listener: 'boot', route: '/nixos/machines/:file', method: 'GET', status: '200' }), 3);
    assert.equal(v('metal_http_requests_total', { listener: 'boot', route: '/api/v1/enroll', method: 'POST', status: '201' }), 1);
    assert.equal(v('metal_http_requests_total', { listener: 'api', route: '/api/v1/enroll', method: 'POST', status: '201' }), 1);
    assert.equal(v('metal_http_request_duration_seconds_count', { listener: 'boot', route: '/nixos/machines/:file', method: 'GET', status: '200' }), 3);
    assert.equal(v('metal_machines', { status: 'enrolled' }), 2);
    // Service tags never become label values: the label sets stay bounded however many machines boot.
    assert.doesNotMatch(text, /NEW1|NEW2|MET1/);
  });

  test('builds by result and duration, queue depth, oldest pending, builders by lease', async () => {
    const empty = await scrape();
    assert.equal(sampleValue(empty, 'metal_build_queue_depth'), 0);
    assert.equal(sampleValue(empty, 'metal_build_oldest_pending_seconds'), 0);
    assert.equal(sampleValue(empty, 'metal_builders', { state: 'live' }), 0);

    for (const tag of ['BLD1', 'BLD2']) {
      await t.ctx.machines.enroll(enrollmentPayload(tag), { kind: 'machine', name: tag });
      await t.ctx.machines.update(tag, { hostname: `h-${tag.toLowerCase()}`, nixos_config: '{ ... }: { }' }, OPERATOR);
      await t.ctx.machines.requestBuild(tag, OPERATOR);
    }
    const queued = await scrape();
    assert.equal(sampleValue(queued, 'metal_build_queue_depth'), 2);
    assert.ok(sampleValue(queued, 'metal_build_oldest_pending_seconds')! >= 0);

    const queue = t.ctx.builds.queueFor(BUILDER, 60_000);
    const first = (await queue.claimNext())!;
    const running = await scrape();
    assert.equal(sampleValue(running, 'metal_build_queue_depth'), 1);
    assert.equal(sampleValue(running, 'metal_builders', { state: 'live' }), 1);
    assert.ok(await queue.fail(first.id, 'nix-build exited with 1'));
    const second = (await queue.claimNext())!;
    assert.ok(await queue.succeed(second.id, { storePath: '/nix/store/x-metal-netboot', artifactUrl: 'http://x/images/builds/2/', note: 'ok' }));

    const done = await scrape();
    assert.equal(sampleValue(done, 'metal_builds_total', { result: 'failed' }), 1);
    assert.equal(sampleValue(done, 'metal_builds_total', { result: 'success' }), 1);
    assert.equal(sampleValue(done, 'metal_builds_total', { result: 'cancelled' }), 0);
    assert.equal(sampleValue(done, 'metal_build_duration_seconds_count', { result: 'failed' }), 1);
    assert.equal(sampleValue(done, 'metal_build_duration_seconds_count', { result: 'success' }), 1);
    assert.equal(sampleValue(done, 'metal_build_queue_depth'), 0);
    assert.equal(sampleValue(done, 'metal_builders', { state: 'live' }), 0);
  });

  test('boot checks by result, from the builder\'s signal: every result exported from the start', async () => {
    const before = await scrape();
    for (const result of ['passed', 'failed', 'skipped']) assert.equal(sampleValue(before, 'metal_build_boot_checks_total', { result }), 0, result);
    t.ctx.notifier.emit('build.boot_checked', 7, 'failed', 12.5);
    t.ctx.notifier.emit('build.boot_checked', 8, 'passed', 40);
    t.ctx.notifier.emit('build.boot_checked', 9, 'skipped', null);
    const after = await scrape();
    for (const result of ['passed', 'failed', 'skipped']) assert.equal(sampleValue(after, 'metal_build_boot_checks_total', { result }), 1, result);
    assert.equal(sampleValue(after, 'metal_build_boot_check_duration_seconds_sum', { result: 'failed' }), 12.5);
    assert.equal(sampleValue(after, 'metal_build_boot_check_duration_seconds_count', { result: 'passed' }), 1);
    assert.equal(sampleValue(after, 'metal_build_boot_check_duration_seconds_count', { result: 'skipped' }), undefined, 'no VM ran, no duration');
  });

  test('each context has its own registry: a second server in this process starts from zero', async () => {
    const other = await createTestContext(freshSqlite());
    const otherApi = await buildApiServer(other.ctx);
    try {
      const text = (await otherApi.inject({ url: '/metrics' })).body;
      assert.equal(sampleValue(text, 'metal_enrollments_total', { result: 'new' }), 0);
      assert.equal(sampleValue(text, 'metal_builds_total', { result: 'failed' }), 0);
    } finally {
      await otherApi.close();
      await other.close();
    }
  });
});

describe('access to /metrics', () => {
  test('METAL_METRICS_TOKEN: without the bearer token 401 and no metrics; with it the exposition', async () => {
    const t = await createTestContext(freshSqlite(), { METAL_METRICS_TOKEN: 'scrape-token-0123456789' });
    const api = await buildApiServer(t.ctx);
    try {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: 'scrape-token-0123456789' }]) {
        const r = await api.inject({ url: '/metrics', headers });
        assert.equal(r.statusCode, 401);
        assert.equal(r.json().error.code, 'unauthorized');
        assert.match(r.json().error.message, /METAL_METRICS_TOKEN/);
        assert.doesNotMatch(r.body, /metal_machines/);
      }
      const ok = await api.inject({ url: '/metrics', headers: { authorization: 'Bearer scrape-token-0123456789' } });
      assert.equal(ok.statusCode, 200);
      assert.match(ok.body, /^# TYPE metal_machines gauge$/m);
    } finally {
      await api.close();
      await t.close();
    }
  });

  test('METAL_METRICS_TOKEN that is too short stops start-up with a message naming the key', () => {
    assert.throws(() => loadConfig({ METAL_METRICS_TOKEN: 'short' }, {}), /METAL_METRICS_TOKEN="\(hidden\)" is invalid/);
    assert.throws(() => loadConfig({ METAL_METRICS_LISTEN: 'nowhere' }, {}), /METAL_METRICS_LISTEN="nowhere" is invalid/);
  });

  test('METAL_METRICS_LISTEN moves /metrics to its own listener; a boot-only process serves it on the boot listener', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'metal-metrics-'));
    const base = {
      METAL_DATA_DIR: dataDir,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: 'http://127.0.0.1:9',
      METAL_ADMIN_PASSWORD: 'correct horse battery staple',
      METAL_LOG_LEVEL: 'silent',
    };
    const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(10_000) });
    try {
      const config = loadConfig({ ...base, METAL_METRICS_LISTEN: '127.0.0.1:0' }, {});
      const server = await startServer(config, createLogger('silent'), ['api', 'boot']);
      try {
        assert.equal((await get(`${server.addresses.api}/metrics`)).status, 404);
        assert.equal((await get(`${server.addresses.boot}/metrics`)).status, 404);
        await get(`${server.addresses.boot}/nixos/machines/X1.ipxe`).then((r) => r.text());
        const r = await get(`${server.addresses.metrics}/metrics`);
        assert.equal(r.status, 200);
        const text = await r.text();
        assert.equal(sampleValue(text, 'metal_boot_scripts_total', { kind: 'registration-missing' }), 1, 'one registry for the whole process');
      } finally {
        await server.stop();
      }
      const bootOnly = await startServer(loadConfig(base, {}), createLogger('silent'), ['boot']);
      try {
        const r = await get(`${bootOnly.addresses.boot}/metrics`);
        assert.equal(r.status, 200);
        assert.match(await r.text(), /^# TYPE metal_boot_scripts_total counter$/m);
      } finally {
        await bootOnly.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('metrics while the database does not answer', () => {
  test('the scrape succeeds with the process counters, metal_database_up 0 and the database gauges empty or 0', async () => {
    let down = false;
    const answer = async <T>(value: T): Promise<T> => {
      if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      return value;
    };
    const metrics = new MetalMetrics({
      machines: { countByStatus: () => answer({ ready: 3 }) },
      builds: {
        countByStatus: () => answer({ pending: 2 }),
        queueStats: () => answer({ pending: 2, oldestPendingAt: new Date(Date.now() - 60_000).toISOString(), liveBuilders: 1, lostBuilders: 0 }),
      },
      backups: { lastAt: () => answer(new Date('2026-11-30T03:00:00.000Z')) },
    });
    metrics.enrollment('new');
    const up = await metrics.registry.metrics();
    assert.equal(sampleValue(up, 'metal_database_up'), 1);
    assert.equal(sampleValue(up, 'metal_machines', { status: 'ready' }), 3);
    assert.equal(sampleValue(up, 'metal_build_queue_depth'), 2);
    assert.equal(sampleValue(up, 'metal_builders', { state: 'live' }), 1);
    assert.equal(sampleValue(up, 'metal_last_backup_timestamp_seconds'), Date.parse('2026-11-30T03:00:00.000Z') / 1000);
    down = true;
    const outage = await metrics.registry.metrics();
    assert.equal(sampleValue(outage, 'metal_database_up'), 0);
    assert.equal(sampleValue(outage, 'metal_enrollments_total', { result: 'new' }), 1, "the process's own counters are still there");
    assert.equal(sampleValue(outage, 'metal_machines', { status: 'ready' }), undefined, 'no stale count is exported');
    assert.equal(sampleValue(outage, 'metal_builders', { state: 'live' }), undefined);
    assert.equal(sampleValue(outage, 'metal_build_queue_depth'), 0);
    assert.equal(sampleValue(outage, 'metal_last_backup_timestamp_seconds'), 0);
  });
});
