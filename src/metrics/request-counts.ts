import type { Registry } from 'prom-client';

/** The labels of an HTTP request's metrics. */
export interface RequestLabels {
  listener: string;
  route: string;
  method: string;
  status: string;
}

/** One label set's running totals: requests, and the duration histogram's buckets and sum. */
export interface RequestTally {
  readonly labels: RequestLabels;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/**
 * `metal_http_requests_total` and `metal_http_request_duration_seconds` as plain numbers, turned into
 * Prometheus samples only when scraped.
 *
 * prom-client's Counter and Histogram check and hash their labels on every count and observation;
 * on the boot listener that was a few percent of each script answer's CPU (bench/analysis.md). Here
 * a caller gets the tally of its label set once (`tally`) and `record` adds to numbers in it. The
 * exposition is the same: a counter and a histogram with cumulative `le` buckets, `_sum` and `_count`.
 */
export class RequestCounts {
  private readonly tallies = new Map<string, RequestTally>();

  constructor(
    private readonly names: { requests: string; duration: string },
    private readonly help: { requests: string; duration: string },
    /** Upper bounds of the duration buckets, ascending, seconds. */
    private readonly bounds: readonly number[],
  ) {}

  /** The tally of one label set, made at its first use. */
  tally(labels: RequestLabels): RequestTally {
    const key = `${labels.listener}\n${labels.route}\n${labels.method}\n${labels.status}`;
    let tally = this.tallies.get(key);
    if (!tally) {
      tally = { labels: { ...labels }, count: 0, sum: 0, buckets: new Float64Array(this.bounds.length + 1) };
      this.tallies.set(key, tally);
    }
    return tally;
  }

  /** Counts one request of `seconds`. */
  record(tally: RequestTally, seconds: number): void {
    tally.count += 1;
    tally.sum += seconds;
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    tally.buckets[i]! += 1;
  }

  /** Registers both metrics in `registry`, read at each scrape. */
  register(registry: Registry): void {
    const requests = this.names.requests;
    const duration = this.names.duration;
    registry.registerMetric({
      name: requests,
      help: this.help.requests,
      type: 'counter',
      get: async () => ({
        name: requests,
        help: this.help.requests,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.tallies.values()].map((t) => ({ labels: { ...t.labels }, value: t.count })),
      }),
      reset: () => this.zero(),
    } as never);
    registry.registerMetric({
      name: duration,
      help: this.help.duration,
      type: 'histogram',
      get: async () => ({
        name: duration,
        help: this.help.duration,
        type: 'histogram',
        aggregator: 'sum',
        values: [...this.tallies.values()].flatMap((t) => this.samples(duration, t)),
      }),
      reset: () => this.zero(),
    } as never);
  }

  /** Back to zero; tallies handed out stay valid. */
  private zero(): void {
    for (const t of this.tallies.values()) {
      t.count = 0;
      t.sum = 0;
      t.buckets.fill(0);
    }
  }

  private samples(name: string, t: RequestTally): Array<{ metricName: string; labels: Record<string, string | number>; value: number }> {
    const out: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    let cumulative = 0;
    this.bounds.forEach((bound, i) => {
      cumulative += t.buckets[i]!;
      out.push({ metricName: `${name}_bucket`, labels: { le: bound, ...t.labels }, value: cumulative });
    });
    cumulative += t.buckets[this.bounds.length]!;
    out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...t.labels }, value: cumulative });
    out.push({ metricName: `${name}_sum`, labels: { ...t.labels }, value: t.sum });
    out.push({ metricName: `${name}_count`, labels: { ...t.labels }, value: t.count });
    return out;
  }
}
