import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBusy, markdownTable, renderRunMarkdown, renderSummaryPage } from './report.ts';
import { newScenario, round, type RunResult } from './result.ts';

function sampleRun(): RunResult {
  const scenario = newScenario('boot-scripts', 'Boot scripts', { machines: 10 });
  scenario.rows.push({ label: 'metal | boot', metrics: { 'req/s': 1000, 'p99 ms': 12 } });
  scenario.bars.push({ bar: 'p99 < 20 ms', target: '< 20 ms', measured: '12 ms', reference: '0.5 × nginx', met: true });
  const missing = newScenario('images', 'Images', {});
  missing.status = 'unavailable';
  missing.note = 'no image route';
  return {
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:10:00.000Z',
    mode: 'full',
    command: 'npm run bench',
    machine: { cpuModel: 'Test CPU', cores: 2, memoryBytes: 2 ** 31, kernel: '6.1', node: 'v20.0.0', nginx: 'nginx/1.22.1', wrk: 'wrk 4.1.0', loadAverageAtStart: [0.1, 0.2, 0.3] },
    scenarios: [scenario, missing],
  };
}

describe('markdownTable', () => {
  it('escapes pipes and flattens newlines so a value cannot break the table', () => {
    assert.equal(markdownTable(['a', 'b'], [['x|y', 'line\nbreak']]), '| a | b |\n|---|---|\n| x\\|y | line break |');
  });
});

describe('renderRunMarkdown', () => {
  it('names the machine and shows each benchmark with its bars and status', () => {
    const md = renderRunMarkdown(sampleRun());
    assert.match(md, /CPU: Test CPU, 2 cores; memory 2\.0 GiB/);
    assert.match(md, /load average at start: 0\.10, 0\.20, 0\.30\n/);
    assert.match(md, /\| metal \\\| boot \| 1000 \| 12 \|/);
    assert.match(md, /\| p99 < 20 ms \| < 20 ms \| 12 ms \| 0\.5 × nginx \| met \|/);
    assert.match(md, /Status: \*\*unavailable\*\*: no image route/);
  });
});

describe('isBusy', () => {
  it('flags a run that started with more than half the cores busy', () => {
    const run = sampleRun();
    assert.equal(isBusy(run), false);
    run.machine.loadAverageAtStart = [1.5, 1, 1];
    assert.equal(isBusy(run), true);
    assert.match(renderRunMarkdown(run), /busy machine/);
  });
});

describe('renderSummaryPage', () => {
  it('lists every bar, marks unmeasured benchmarks, and appends the analysis', () => {
    const page = renderSummaryPage(sampleRun(), 'bench/results/x.md', 'Why it is slow.');
    assert.match(page, /## Latest full run \(bench\/results\/x\.md\)/);
    assert.match(page, /\| p99 < 20 ms \| < 20 ms \| 12 ms \| 0\.5 × nginx \| met \|/);
    assert.ok(page.includes('| Images |  | unavailable: no image route |  | not measured |'));
    assert.match(page, /## Analysis\n\nWhy it is slow\.\n/);
  });
});

describe('round', () => {
  it('keeps three significant digits below 100 and whole numbers above', () => {
    assert.deepEqual([round(12.345), round(0.012345), round(1234.5)], [12.3, 0.0123, 1235]);
  });
});
