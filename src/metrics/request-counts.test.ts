import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { RequestCounts } from './request-counts.ts';

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const NAMES = { requests: 'x_requests_total', duration: 'x_duration_seconds' };
const HELP = { requests: 'Requests', duration: 'Durations' };

describe('RequestCounts', () => {
  test('exposes the same text as prom-client’s Counter and Histogram fed the same requests', async () => {
    const ours = new Registry();
    const counts = new RequestCounts(NAMES, HELP, BOUNDS);
    counts.register(ours);
    const theirs = new Registry();
    const labelNames = ['listener', 'route', 'method', 'status'] as const;
    const counter = new Counter({ name: NAMES.requests, help: HELP.requests, labelNames, registers: [theirs] });
    const histogram = new Histogram({ name: NAMES.duration, help: HELP.duration, labelNames, buckets: BOUNDS, registers: [theirs] });
    const sets = [
      { listener: 'boot', route: '/nixos/machines/:file', method: 'GET', status: '200' },
      { listener: 'boot', route: '/boot.ipxe', method: 'HEAD', status: '200' },
      { listener: 'api', route: '/api/v1/machines', method: 'GET', status: '404' },
    ];
    // Durations on and between bucket bounds, and past the last one.
    const durations = [0, 0.005, 0.0051, 0.01, 0.3, 1, 1.5, 0.025, 0.049, 7];
    durations.forEach((seconds, i) => {
      const labels = sets[i % sets.length]!;
      counts.record(counts.tally(labels), seconds);
      counter.inc(labels);
      histogram.observe(labels, seconds);
    });
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  test('a tally taken once keeps counting after a reset', async () => {
    const registry = new Registry();
    const counts = new RequestCounts(NAMES, HELP, BOUNDS);
    counts.register(registry);
    const tally = counts.tally({ listener: 'boot', route: '/r', method: 'GET', status: '200' });
    counts.record(tally, 0.001);
    registry.resetMetrics();
    counts.record(tally, 0.001);
    assert.match(await registry.metrics(), /x_requests_total\{listener="boot",route="\/r",method="GET",status="200"\} 1\n/);
  });
});
