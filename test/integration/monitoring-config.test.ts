import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { buildApiServer, buildBootServer } from '../../src/server/roles.ts';
import { createTestContext, enrollmentPayload } from '../support/context.ts';
import { freshSqlite } from '../support/databases.ts';
import { familyNames, prometheusTool } from '../support/metrics.ts';
import { alertExpressions, dashboardExpressions, DEPLOY, metricNames, readDashboard } from '../support/monitoring.ts';

// deploy/prometheus/alerts.yml and deploy/grafana/metal.json: valid for their tools, and reading
// only metrics the server exports.

const promtool = prometheusTool('promtool');

/** The metric families of a server's exposition; histogram series add _bucket, _sum and _count. */
async function exportedNames(): Promise<Set<string>> {
  const t = await createTestContext(freshSqlite());
  const api = await buildApiServer(t.ctx);
  const boot = await buildBootServer(t.ctx);
  try {
    await boot.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload('NAMES1') });
    const text = (await api.inject({ url: '/metrics' })).body;
    const names = new Set<string>(['up']);
    for (const family of familyNames(text)) {
      names.add(family);
      if (new RegExp(`^# TYPE ${family} histogram$`, 'm').test(text)) for (const s of ['_bucket', '_sum', '_count']) names.add(family + s);
    }
    return names;
  } finally {
    await boot.close();
    await api.close();
    await t.close();
  }
}

describe('alert rules', { skip: !promtool }, () => {
  test('promtool check rules accepts deploy/prometheus/alerts.yml', () => {
    const r = spawnSync(promtool!, ['check', 'rules', DEPLOY.alerts], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${alertExpressions().length} rules found`), 'promtool read every rule');
  });

  test('promtool test rules passes the unit tests in alerts.test.yml', () => {
    const r = spawnSync(promtool!, ['test', 'rules', DEPLOY.alertTests], { encoding: 'utf8', timeout: 60_000, cwd: dirname(DEPLOY.alertTests) });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  });
});

describe('deploy files read only metrics that exist', () => {
  test('metricNames finds metrics, not functions, labels or strings', () => {
    assert.deepEqual(
      metricNames('sum by (le, route) (rate(metal_x_bucket{listener="boot",status=~"5.."}[5m])) / max(up{job="metal"}) > 0.05'),
      ['metal_x_bucket', 'up'],
    );
  });

  test('every metric of the alert rules and of the Grafana dashboard is in the exposition', { timeout: 60_000 }, async () => {
    const exported = await exportedNames();
    const unknown: string[] = [];
    const expressions = [...alertExpressions(), ...dashboardExpressions()];
    assert.ok(alertExpressions().length >= 6, 'every alert rule was read');
    for (const expr of expressions) for (const name of metricNames(expr)) if (!exported.has(name)) unknown.push(`${name} in ${expr}`);
    assert.deepEqual(unknown, []);
    // Each area of the issue has a panel reading it.
    const read = new Set(expressions.flatMap(metricNames));
    for (const name of ['metal_machines', 'metal_enrollments_total', 'metal_boot_scripts_total', 'metal_boot_image_bytes_total', 'metal_builds_total', 'metal_build_duration_seconds_bucket', 'metal_build_queue_depth', 'metal_builders']) {
      assert.ok(read.has(name), `${name} is shown or alerted on`);
    }
  });

  test('the dashboard is a Grafana dashboard: unique panel ids, a Prometheus datasource variable, panels within 24 columns', () => {
    const d = readDashboard();
    assert.equal(d.uid, 'metal-enrollment');
    assert.equal(typeof d.schemaVersion, 'number');
    const variable = d.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual(variable && { type: variable.type, query: variable.query }, { type: 'datasource', query: 'prometheus' });
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of d.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits in 24 columns`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`);
      assert.ok(p.targets && p.targets.length > 0, `${p.title} has queries`);
      assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: refIds are unique`);
    }
    assert.deepEqual(d.panels.filter((p) => p.type === 'row').map((p) => p.title), ['Fleet', 'Boot storm', 'Builds', 'API']);
  });
});
