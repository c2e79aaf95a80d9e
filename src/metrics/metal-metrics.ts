import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { UnauthorizedError } from '../core/errors.ts';
import type { BuildQueueStats } from '../core/ports.ts';
import { RequestCounts, type RequestTally } from './request-counts.ts';

/** What the gauges read at each scrape. */
export interface MetricsSources {
  machines: { countByStatus(): Promise<Record<string, number>> };
  builds: { countByStatus(): Promise<Record<string, number>>; queueStats(now: string): Promise<BuildQueueStats> };
  /** When the last whole `metal backup` of this database was taken (undefined: none recorded). */
  backups: { lastAt(): Promise<Date | undefined> };
}

/** What one scrape read from the database. */
interface DatabaseReadings {
  machines: Record<string, number>;
  builds: Record<string, number>;
  queue: BuildQueueStats;
  lastBackup: Date | undefined;
}

/** Which listener served a request (a bounded label). */
export type ListenerName = 'api' | 'boot' | 'metrics';

/** How an enrollment request ended. */
export type EnrollmentResult = 'new' | 'known' | 'rejected' | 'conflict' | 'rate_limited' | 'error';

/** How a build ended. */
export type BuildResult = 'success' | 'failed' | 'cancelled';
export type BootCheckResult = 'passed' | 'failed' | 'skipped';

/** Seconds buckets for HTTP requests: from a cached boot script to a slow image download. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds buckets for builds: a cached rebuild to the default one-hour timeout. */
const BUILD_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

/**
 * The Prometheus metrics of one `metal` process: one registry per process (per context), so
 * several servers in one test process do not mix their counts. Counters are bumped by the parts
 * that see the event; gauges are read from the database at each scrape.
 */
export class MetalMetrics {
  readonly registry = new Registry();
  private readonly http = new RequestCounts(
    { requests: 'metal_http_requests_total', duration: 'metal_http_request_duration_seconds' },
    {
      requests: 'HTTP requests answered, by listener, route template, method and status',
      duration: 'Time to answer an HTTP request, by listener, route template, method and status',
    },
    HTTP_BUCKETS,
  );
  /** Scripts served since the last scrape, by kind. */
  private readonly scriptCounts = new Map<string, number>();
  private readonly imageBytes: Counter<'kind'>;
  private readonly imageRequests: Counter<'status'>;
  private readonly enrollments: Counter<'result'>;
  private readonly builds: Counter<'result'>;
  private readonly buildDuration: Histogram<'result'>;
  private readonly bootChecks: Counter<'result'>;
  private readonly bootCheckDuration: Histogram<'result'>;
  private readonly webhookAttempts: Counter<'result'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'metal_' });
    // Gauges named like counters fail `promtool check metrics`; each is the sum of its labelled
    // sibling (metal_nodejs_active_handles{type} and so on).
    for (const name of ['metal_nodejs_active_handles_total', 'metal_nodejs_active_requests_total', 'metal_nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    // The database is read once per scrape, for every database gauge together (a scrape starts their
    // collects at once; the read is forgotten once it is done). When it does not answer, those gauges
    // are left empty or 0, `metal_database_up` says 0, and the scrape still succeeds: the process's own
    // counters are what an operator needs most during a database outage.
    let pendingRead: Promise<DatabaseReadings> | undefined;
    const readings = (): Promise<DatabaseReadings> => {
      pendingRead ??= Promise.all([sources.machines.countByStatus(), sources.builds.countByStatus(), sources.builds.queueStats(new Date().toISOString()), sources.backups.lastAt()])
        .then(([machines, builds, queue, lastBackup]) => ({ machines, builds, queue, lastBackup }))
        .finally(() => {
          pendingRead = undefined;
        });
      return pendingRead;
    };
    /** The readings of this scrape, or undefined when the database did not answer. */
    const read = (): Promise<DatabaseReadings | undefined> => readings().catch(() => undefined);
    new Gauge({
      name: 'metal_database_up',
      help: 'Whether the database answered the reads of this scrape (1) or not (0); the database gauges are empty or 0 while it does not',
      registers,
      async collect() {
        this.set((await read()) ? 1 : 0);
      },
    });
    const byStatus = (name: string, help: string, pick: (r: DatabaseReadings) => Record<string, number>) =>
      new Gauge({
        name,
        help,
        labelNames: ['status'],
        registers,
        async collect() {
          const r = await read();
          this.reset();
          if (r) for (const [status, n] of Object.entries(pick(r))) this.set({ status }, n);
        },
      });
    byStatus('metal_machines', 'Machines by lifecycle status', (r) => r.machines);
    byStatus('metal_builds', 'Builds by status', (r) => r.builds);
    const queueGauge = (name: string, help: string, value: (q: BuildQueueStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const r = await read();
          this.set(r ? value(r.queue) : 0);
        },
      });
    queueGauge('metal_build_queue_depth', 'Builds waiting for a builder (pending)', (q) => q.pending);
    queueGauge('metal_build_oldest_pending_seconds', 'Age of the oldest pending build in seconds (0 when none waits)', (q) =>
      q.oldestPendingAt === null ? 0 : Math.max(0, (Date.now() - Date.parse(q.oldestPendingAt)) / 1000),
    );
    new Gauge({
      name: 'metal_last_backup_timestamp_seconds',
      help: 'When the last whole metal backup of this database was taken, as a Unix time (0: none recorded, or the database did not answer)',
      registers,
      async collect() {
        const r = await read();
        this.set(r?.lastBackup ? r.lastBackup.getTime() / 1000 : 0);
      },
    });
    new Gauge({
      name: 'metal_builders',
      help: 'Builders seen through their leases on running builds: live (lease current) or lost (lease expired)',
      labelNames: ['state'],
      registers,
      async collect() {
        const r = await read();
        this.reset();
        if (!r) return;
        this.set({ state: 'live' }, r.queue.liveBuilders);
        this.set({ state: 'lost' }, r.queue.lostBuilders);
      },
    });

    this.http.register(this.registry);
    // Counted in a plain map on the script path and handed to prom-client at each scrape.
    const scriptCounts = this.scriptCounts;
    new Counter({
      name: 'metal_boot_scripts_total',
      help: 'iPXE scripts served, by the boot decision that chose them',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of scriptCounts) {
          if (n > 0) this.inc({ kind }, n);
          scriptCounts.set(kind, 0);
        }
      },
    });
    this.imageBytes = new Counter({ name: 'metal_boot_image_bytes_total', help: 'Image bytes sent to machines, by file kind (kernel, initrd, manifest, other)', labelNames: ['kind'], registers });
    this.imageRequests = new Counter({ name: 'metal_boot_image_requests_total', help: 'Image file requests, by HTTP status', labelNames: ['status'], registers });
    this.enrollments = new Counter({ name: 'metal_enrollments_total', help: 'Enrollment requests, by result', labelNames: ['result'], registers });
    this.builds = new Counter({ name: 'metal_builds_total', help: 'Builds finished by this process, by result', labelNames: ['result'], registers });
    this.buildDuration = new Histogram({
      name: 'metal_build_duration_seconds',
      help: 'Time from a build starting to its end, by result',
      labelNames: ['result'],
      buckets: BUILD_BUCKETS,
      registers,
    });
    this.bootChecks = new Counter({
      name: 'metal_build_boot_checks_total',
      help: 'Images booted in a VM before publication by this process (METAL_BUILD_BOOT_CHECK), by result (passed, failed, skipped by their profile)',
      labelNames: ['result'],
      registers,
    });
    this.bootCheckDuration = new Histogram({
      name: 'metal_build_boot_check_duration_seconds',
      help: 'How long a boot check VM ran until the image reported booted (passed) or the check failed, by result',
      labelNames: ['result'],
      buckets: BUILD_BUCKETS,
      registers,
    });
    for (const result of ['passed', 'failed', 'skipped'] as const) this.bootChecks.inc({ result }, 0);
    this.webhookAttempts = new Counter({
      name: 'metal_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by result (delivered, retrying, given_up)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['delivered', 'retrying', 'given_up'] as const) this.webhookAttempts.inc({ result }, 0);
    // Results that have not happened yet are exported as 0, so rate() and alerts see them from the start.
    for (const result of ['new', 'known', 'rejected', 'conflict', 'rate_limited'] as const) this.enrollments.inc({ result }, 0);
    for (const result of ['success', 'failed', 'cancelled'] as const) this.builds.inc({ result }, 0);
  }

  httpRequest(labels: { listener: ListenerName; route: string; method: string; status: number }, seconds: number): void {
    this.http.record(this.http.tally({ ...labels, status: String(labels.status) }), seconds);
  }

  /**
   * `httpRequest` for a hot path: counts requests of one listener with label sets made once per
   * route, method and status rather than once per request.
   */
  httpRequestRecorder(listener: ListenerName): (route: string, method: string, status: number, seconds: number) => void {
    const tallies = new Map<string, RequestTally>();
    // A storm asks the same route, method and status over and over: the last tally is kept at hand.
    let last: { route: string; method: string; status: number; tally: RequestTally } | undefined;
    return (route, method, status, seconds) => {
      if (last === undefined || last.route !== route || last.method !== method || last.status !== status) {
        const key = `${route} ${method} ${status}`;
        let tally = tallies.get(key);
        if (!tally) tallies.set(key, (tally = this.http.tally({ listener, route, method, status: String(status) })));
        last = { route, method, status, tally };
      }
      this.http.record(last.tally, seconds);
    };
  }

  bootScript(kind: string): void {
    this.scriptCounts.set(kind, (this.scriptCounts.get(kind) ?? 0) + 1);
  }

  /** One image file request; `bytes` as read from disk for it (0 for HEAD, 304, 404). */
  imageRequest(file: string | undefined, status: number, bytes: number): void {
    this.imageRequests.inc({ status: String(status) });
    if (bytes > 0) this.imageBytes.inc({ kind: imageKind(file) }, bytes);
  }

  enrollment(result: EnrollmentResult): void {
    this.enrollments.inc({ result });
  }

  buildFinished(result: BuildResult, seconds: number | null): void {
    this.builds.inc({ result });
    if (seconds !== null) this.buildDuration.observe({ result }, seconds);
  }

  bootChecked(result: BootCheckResult, seconds: number | null): void {
    this.bootChecks.inc({ result });
    if (seconds !== null) this.bootCheckDuration.observe({ result }, seconds);
  }

  webhookAttempt(result: 'delivered' | 'retrying' | 'given_up'): void {
    this.webhookAttempts.inc({ result });
  }

  /** The exposition in the Prometheus text format. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}

/** kernel, initrd, manifest or other, from an image file's name. */
export function imageKind(file: string | undefined): string {
  if (file === undefined) return 'other';
  if (file === 'bzImage' || file === 'kernel') return 'kernel';
  if (file.startsWith('initrd')) return 'initrd';
  if (file.endsWith('.json')) return 'manifest';
  return 'other';
}

/**
 * Counts every answered request of a listener, labelled by route template (never the raw path, so
 * service tags stay out of label values). Requests no route matched count as route `unmatched`.
 */
export function installHttpMetrics(app: FastifyInstance, metrics: MetalMetrics, listener: ListenerName): void {
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequest(
      { listener, route: request.routeOptions.url ?? 'unmatched', method: request.method, status: reply.statusCode },
      reply.elapsedTime / 1000,
    );
  });
}

/** Who may read `/metrics`: anyone, or callers presenting METAL_METRICS_TOKEN as a bearer token. */
export interface MetricsRouteOptions {
  token?: string | undefined;
}

/** `GET /metrics` in the Prometheus text format. */
export function registerMetricsRoute(app: FastifyInstance, metrics: MetalMetrics, options: MetricsRouteOptions = {}): void {
  const expected = options.token === undefined ? undefined : digest(options.token);
  // The token is checked here rather than by the access rules: it is not a user or an API token.
  app.get('/metrics', { config: { access: 'public' }, schema: { hide: true } }, async (request, reply) => {
    if (expected !== undefined) {
      const header = request.headers.authorization ?? '';
      const given = /^Bearer (.+)$/i.exec(header)?.[1];
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        throw new UnauthorizedError('metrics require Authorization: Bearer <METAL_METRICS_TOKEN>');
      }
    }
    return reply.type(metrics.registry.contentType).send(await metrics.exposition());
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
