import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/core/logger.ts';
import { startServer, type RunningServer } from '../../src/server/serve.ts';
import { FIXTURES, nixBuildAvailable, uniqueConfig, waitForBuild } from '../support/builder.ts';
import { createTestContext, enrollmentPayload } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { buildApiServer, buildBootServer } from '../../src/server/roles.ts';
import { prometheusTool } from '../support/metrics.ts';
import { alertExpressions, dashboardExpressions, DEPLOY } from '../support/monitoring.ts';

// The exposition checked by the real Prometheus tools: promtool's linter, and a Prometheus server
// scraping a running metal server, then answering PromQL over what it scraped.

const TOKEN = 'prometheus-scrape-token-0123';
const OPERATOR = { kind: 'user', name: 'test', role: 'operator' } as const;
const promtool = prometheusTool('promtool');
const prometheus = prometheusTool('prometheus');
const nix = nixBuildAvailable();

/** A free loopback port (bound then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with `probe()`'s value once it is defined; rejects after `timeoutMs` with the last state. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms (${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('metrics checked by the real Prometheus tools', { skip: !promtool || !prometheus || !nix }, () => {
  let dataDir: string;
  let server: RunningServer;
  let promDir: string;
  let prom: ChildProcess | undefined;
  let promUrl: string;
  const promLog: string[] = [];

  const scrapeText = async () => {
    const r = await fetch(`${server.addresses.api}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200);
    return r.text();
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'metal-prom-data-'));
    const config = loadConfig(
      {
        METAL_DATA_DIR: dataDir,
        METAL_LISTEN: '127.0.0.1:0',
        METAL_BOOT_LISTEN: '127.0.0.1:0',
        METAL_BOOT_URL: 'http://127.0.0.1:9',
        METAL_ADMIN_PASSWORD: 'correct horse battery staple',
        METAL_NIX_ENTRY: FIXTURES.ok,
        METAL_ENROLL_RATE: '0',
        METAL_METRICS_TOKEN: TOKEN,
        METAL_BUILD_UNSANDBOXED: '1',
        METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
      },
      {},
    );
    server = await startServer(config, createLogger(config.logLevel), ['api', 'boot', 'builder']);
    promDir = mkdtempSync(join(tmpdir(), 'metal-prom-'));
    writeFileSync(join(promDir, 'token'), TOKEN);
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: ['${DEPLOY.alerts}']`,
        'scrape_configs:',
        '  - job_name: metal',
        '    scrape_interval: 1s',
        `    authorization: { type: Bearer, credentials_file: ${join(promDir, 'token')} }`,
        `    static_configs: [{ targets: ['${new URL(server.addresses.api!).host}'] }]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      prometheus!,
      [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prom.stdout!.on('data', (c: Buffer) => promLog.push(String(c)));
    prom.stderr!.on('data', (c: Buffer) => promLog.push(String(c)));
    await eventually('prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`, { signal: AbortSignal.timeout(5000) })).ok ? true : undefined), 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${promLog.join('')}`);
    });
  });

  after(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      const timer = setTimeout(() => prom!.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(promDir, { recursive: true, force: true });
  });

  test('a scripted scenario, then PromQL over what Prometheus scraped gives the expected counts', { timeout: 180_000 }, async () => {
    const boot = server.addresses.boot!;
    const post = (tag: string) =>
      fetch(`${boot}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(enrollmentPayload(tag)), signal: AbortSignal.timeout(10_000) });
    assert.equal((await post('PROM1')).status, 201);
    assert.equal((await post('PROM2')).status, 201);
    assert.equal((await post('PROM1')).status, 200);
    for (const tag of ['PROM1', 'PROM2', 'UNKNOWN1', 'UNKNOWN2', 'UNKNOWN3']) {
      const r = await fetch(`${boot}/nixos/machines/${tag}.ipxe`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(r.status, 200);
      await r.text();
    }
    const { ctx } = server;
    await ctx.machines.update('PROM1', { hostname: 'web-01', nixos_config: uniqueConfig() }, OPERATOR);
    await ctx.machines.update('PROM2', { hostname: 'web-02', nixos_config: '{ config, ... }: { services.openssh.enable = true' }, OPERATOR);
    const ok = await ctx.machines.requestBuild('PROM1', OPERATOR);
    const broken = await ctx.machines.requestBuild('PROM2', OPERATOR);
    assert.equal((await waitForBuild(ctx, ok.id, undefined, 120_000)).status, 'success');
    assert.equal((await waitForBuild(ctx, broken.id, undefined, 120_000)).status, 'failed');

    if (promtool) {
      const check = spawnSync(promtool, ['check', 'metrics'], { input: await scrapeText(), encoding: 'utf8', timeout: 30_000 });
      assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
    }

    const expected: Record<string, number> = {
      'sum(metal_enrollments_total{result="new"})': 2,
      'sum(metal_enrollments_total{result="known"})': 1,
      'sum(metal_boot_scripts_total{kind="registration-missing"})': 3,
      'sum(metal_boot_scripts_total{kind="hold-no-image"})': 2,
      'sum(metal_builds_total{result="success"})': 1,
      'sum(metal_builds_total{result="failed"})': 1,
      'sum(metal_build_duration_seconds_count)': 2,
      'sum(metal_http_requests_total{listener="boot",route="/nixos/machines/:file",status="200"})': 5,
      'sum(metal_http_requests_total{listener="boot",route="/api/v1/enroll"})': 3,
      'sum(metal_build_queue_depth)': 0,
      'sum(metal_machines)': 2,
    };
    const query = async (q: string): Promise<number | undefined> => {
      const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(10_000) });
      const body = (await r.json()) as { status: string; data: { result: Array<{ value: [number, string] }> } };
      assert.equal(body.status, 'success', q);
      const sample = body.data.result[0];
      return sample ? Number(sample.value[1]) : undefined;
    };
    // Prometheus scrapes every second: wait until a scrape after the scenario is in, then compare all.
    const seen = await eventually(
      'prometheus scraped the scenario',
      async () => {
        const values: Record<string, number | undefined> = {};
        for (const q of Object.keys(expected)) values[q] = await query(q);
        return Object.entries(expected).every(([q, v]) => values[q] === v) ? values : undefined;
      },
      60_000,
    ).catch(async (err) => {
      const values: Record<string, number | undefined> = {};
      for (const q of Object.keys(expected)) values[q] = await query(q);
      throw new Error(`${(err as Error).message}\nexpected ${JSON.stringify(expected, null, 1)}\ngot ${JSON.stringify(values, null, 1)}\n${promLog.join('')}`);
    });
    assert.deepEqual(seen, expected);
    const up = await query('up{job="metal"}');
    assert.equal(up, 1, 'the scrape with the bearer token succeeds');
  });

  test('Prometheus loads the alert rules, and accepts every dashboard and alert expression', { timeout: 60_000 }, async () => {
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`, { signal: AbortSignal.timeout(10_000) })).json()) as {
      data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    assert.deepEqual(loaded.map((r) => r.name).sort(), ['MetalBackupOld', 'MetalBootChecksFailing', 'MetalBootServer5xx', 'MetalBuildQueueStuck', 'MetalBuildsFailing', 'MetalDatabaseUnreachable', 'MetalDown', 'MetalIdentityConflicts', 'MetalNoBuilderAlive', 'MetalWebhooksFailing']);
    for (const expr of [...dashboardExpressions(), ...alertExpressions()]) {
      const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(10_000) });
      const body = (await r.json()) as { status: string; error?: string };
      assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    }
  });
});

describe('promtool check metrics', { skip: !promtool }, () => {
  test('the exposition of an API and a boot listener, with every series family present, passes the linter', { timeout: 60_000 }, async () => {
    const t = await createTestContext(freshSqlite());
    const api = await buildApiServer(t.ctx);
    const boot = await buildBootServer(t.ctx);
    try {
      await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('LINT1') });
      await boot.inject({ url: '/nixos/machines/LINT1.ipxe' });
      await boot.inject({ url: '/images/registration/initrd' });
      const text = (await api.inject({ url: '/metrics' })).body;
      const check = spawnSync(promtool!, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
      assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
    } finally {
      await boot.close();
      await api.close();
      await t.close();
    }
  });
});
