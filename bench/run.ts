import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { createBenchContext, FULL, QUICK, type BenchContext } from './bench-context.ts';
import { cleanupAll, isInterrupted } from './cleanup.ts';
import { describeMachine } from './machine-info.ts';
import { missingTools, NGINX, NIX_BUILD, PG_DUMP, SQLITE3, WRK, type Tool } from './prerequisites.ts';
import { renderRunMarkdown, renderSummaryPage } from './report.ts';
import { newScenario, type RunResult, type ScenarioResult } from './result.ts';
import { benchApiListing } from './scenarios/api-listing.ts';
import { benchBackup } from './scenarios/backup.ts';
import { benchBootScripts } from './scenarios/boot-scripts.ts';
import { benchBootTable } from './scenarios/boot-table.ts';
import { benchBuildLatency } from './scenarios/build-latency.ts';
import { benchEnrollment } from './scenarios/enrollment.ts';
import { benchImages } from './scenarios/images.ts';

interface Scenario {
  name: string;
  needs: Tool[];
  run(bench: BenchContext): Promise<ScenarioResult>;
}

/** Every benchmark, in the order a run performs them. */
export const SCENARIOS: readonly Scenario[] = [
  { name: 'boot-scripts', needs: [NGINX, WRK], run: benchBootScripts },
  { name: 'boot-table', needs: [], run: benchBootTable },
  { name: 'images', needs: [NGINX, WRK], run: benchImages },
  { name: 'enrollment', needs: [], run: benchEnrollment },
  { name: 'build-latency', needs: [NIX_BUILD], run: benchBuildLatency },
  { name: 'api-listing', needs: [WRK], run: benchApiListing },
  { name: 'backup', needs: [SQLITE3, PG_DUMP], run: benchBackup },
];

const HELP = `usage: npm run bench -- [--quick] [--only <name>[,<name>…]] [--profile] [--no-docs]
  --quick     small sizes: checks that every benchmark works, in about two minutes (numbers not quotable)
  --only      run only these: ${SCENARIOS.map((s) => s.name).join(', ')}
  --profile   run each server under test with node --cpu-prof and summarise its hottest functions
  --no-docs   do not rewrite docs/benchmarks.md from this run
  --render F  only rewrite docs/benchmarks.md from the results file F (e.g. after editing bench/analysis.md)
Results go to bench/results/<date>.json and .md; docs/benchmarks.md is regenerated from a full run.`;

const ROOT = fileURLToPath(new URL('../', import.meta.url));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.render) {
    const run = JSON.parse(readFileSync(values.render, 'utf8')) as RunResult;
    const md = relative(ROOT, values.render).replace(/\.json$/, '.md');
    writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), renderSummaryPage(run, md));
    console.log(`bench: docs/benchmarks.md rewritten from ${md}`);
    return 0;
  }
  const wanted = values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS.map((s) => s.name);
  const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.name === w));
  if (unknown.length) {
    console.error(`bench: unknown benchmark ${unknown.join(', ')}; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const selected = SCENARIOS.filter((s) => wanted.includes(s.name));
  const { advice } = missingTools(selected.flatMap((s) => s.needs));
  if (advice) {
    console.error(`bench: ${advice}`);
    return 3;
  }

  const machine = describeMachine();
  const startedAt = new Date().toISOString();
  console.log(`bench: ${values.quick ? 'quick' : 'full'} run on ${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}`);
  if (machine.loadAverageAtStart[0] > machine.cores / 2) {
    console.warn(`bench: WARNING: load average ${machine.loadAverageAtStart[0].toFixed(2)} on ${machine.cores} cores: other work will distort these numbers`);
  }
  const bench = createBenchContext(values.quick ? QUICK : FULL, values.quick, values.profile);
  const scenarios: ScenarioResult[] = [];
  for (const scenario of selected) {
    const t0 = performance.now();
    console.log(`bench: ${scenario.name}…`);
    let result: ScenarioResult;
    try {
      result = await scenario.run(bench);
    } catch (err) {
      result = newScenario(scenario.name, scenario.name, {});
      result.status = 'failed';
      result.note = err instanceof Error ? err.message : String(err);
    }
    if (isInterrupted()) return 130;
    scenarios.push(result);
    console.log(`bench: ${scenario.name}: ${result.status} in ${((performance.now() - t0) / 1000).toFixed(1)} s${result.note ? `: ${result.note}` : ''}`);
    for (const row of result.rows) console.log(`  ${row.label}: ${Object.entries(row.metrics).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    for (const bar of result.bars) console.log(`  ${bar.met === true ? 'PASS' : bar.met === false ? 'FAIL' : 'n/a '} ${bar.bar}: ${bar.measured}${bar.reference ? ` (${bar.reference})` : ''}`);
  }

  const run: RunResult = {
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: values.quick ? 'quick' : 'full',
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    scenarios,
  };
  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stem = `${startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}${values.quick ? '-quick' : ''}`;
  writeFileSync(join(resultsDir, `${stem}.json`), `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(join(resultsDir, `${stem}.md`), renderRunMarkdown(run));
  console.log(`bench: results in bench/results/${stem}.json and .md`);
  // Only a full run of every benchmark speaks for the whole page; --only and --quick runs leave it alone.
  if (!values.quick && !values.only && !values['no-docs']) {
    writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), renderSummaryPage(run, `bench/results/${stem}.md`));
    console.log('bench: docs/benchmarks.md updated');
  } else if (!values['no-docs']) {
    console.log('bench: docs/benchmarks.md left as it was (not a full run of every benchmark)');
  }
  const failed = scenarios.some((s) => s.status === 'failed' || s.bars.some((b) => b.met === false));
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
} finally {
  await cleanupAll();
}
process.exit(code);
