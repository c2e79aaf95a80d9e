import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** deploy/prometheus and deploy/grafana files. */
export const DEPLOY = {
  alerts: fileURLToPath(new URL('../../deploy/prometheus/alerts.yml', import.meta.url)),
  alertTests: fileURLToPath(new URL('../../deploy/prometheus/alerts.test.yml', import.meta.url)),
  dashboard: fileURLToPath(new URL('../../deploy/grafana/metal.json', import.meta.url)),
};

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string; datasource?: { uid: string } }>;
}

export function readDashboard(): { title: string; uid: string; schemaVersion: number; panels: DashboardPanel[]; templating: { list: Array<{ name: string; type: string; query: string }> } } {
  return JSON.parse(readFileSync(DEPLOY.dashboard, 'utf8'));
}

/** Every PromQL expression of the dashboard, with Grafana's `$__rate_interval` made concrete. */
export function dashboardExpressions(): string[] {
  return readDashboard()
    .panels.flatMap((p) => p.targets ?? [])
    .map((t) => t.expr.replaceAll('$__rate_interval', '1m'));
}

/** The `expr:` values of the alert rules (one-line and `|` blocks). */
export function alertExpressions(): string[] {
  const text = readFileSync(DEPLOY.alerts, 'utf8');
  const out: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    if (m[2] !== '|') {
      out.push(m[2]!);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > m[1]!.length)) block.push(lines[++i]!.trim());
    out.push(block.join(' ').trim());
  }
  return out;
}

const PROMQL_WORDS = new Set([
  'sum', 'max', 'min', 'avg', 'count', 'by', 'without', 'and', 'or', 'unless', 'on', 'ignoring', 'group_left', 'group_right',
  'rate', 'increase', 'irate', 'histogram_quantile', 'topk', 'bottomk', 'le', 'offset', 'bool', 'time',
]);

/**
 * The metric names an expression reads: identifiers that are not PromQL words, label names (inside
 * braces or after by/without) or string contents.
 */
export function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '').replace(/\[[^\]]*\]/g, '');
  const names = [...withoutStrings.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
  return [...new Set(names)];
}
