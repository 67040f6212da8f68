/**
 * Prometheus metrics (prom-client), one registry per server. Gauges are read from
 * the live tables at scrape time, so they cannot drift from what the server holds.
 *
 * Series are bounded: a suite label is a suite of the tokens file, a pool label a pool
 * some worker has connected as; anything else is counted under `_other` (an admin token
 * dispatching to made-up names must not grow the scrape). Outcomes are error codes, and
 * disconnect reasons a fixed set.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { isErrorCode } from '../shared/errors.ts';

/** The label value for a suite, pool or outcome that would make an unbounded series. */
export const OTHER_LABEL = '_other';

/** Distinct pool labels kept; past it, newly seen pools count under `_other`. */
export const MAX_POOL_LABELS = 1000;

/**
 * prom-client's default metrics that break `promtool check metrics` (gauges named `*_total`).
 * The same figures by type remain: `nodejs_active_handles` etc. (sum them for the total).
 */
const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Why a worker socket ended, as a bounded label. */
export type DisconnectReason =
  | 'drained'
  | 'server_shutdown'
  | 'heartbeat_timeout'
  | 'backpressure'
  | 'protocol_error'
  | 'closed_by_agent'
  | 'connection_lost'
  | 'socket_error'
  | 'other';

/** Auth refusal kinds counted by `flowtest_auth_failures_total`. */
export type AuthFailureKind = 'unauthorized' | 'forbidden' | 'rate_limited';
/** Where a refusal happened: an HTTP route or a socket handshake (worker or console). */
export type AuthFailureTransport = 'http' | 'socket';

/**
 * Maps the session's free-text reason (worker-session.ts, local-router.ts) to a label.
 * Close code 1006 (no close frame) is a lost connection; other codes the agent chose.
 */
export function disconnectReason(text: string): DisconnectReason {
  if (text === 'drained') return 'drained';
  if (text.startsWith('server shutting down')) return 'server_shutdown';
  if (text.startsWith('heartbeat')) return 'heartbeat_timeout';
  if (text.startsWith('backpressure')) return 'backpressure';
  if (text.startsWith('bad frame') || text.startsWith('protocol')) return 'protocol_error';
  const closed = /^socket closed \((\d+)\)/.exec(text);
  if (closed) return closed[1] === '1006' ? 'connection_lost' : 'closed_by_agent';
  if (text.startsWith('socket error') || text.startsWith('send failed')) return 'socket_error';
  return 'other';
}

/** What the gauges read at scrape time and how labels are bounded. */
export interface MetricsSource {
  workerCounts(): Iterable<{ suite: string; pool: string; count: number }>;
  /** Per pool: jobs held by its workers and jobs waiting in its queue. */
  poolJobs(): Iterable<{ suite: string; pool: string; inFlight: number; queued: number }>;
  /** Whether `suite` is a suite of the tokens file (else its label is `_other`). */
  knowsSuite(suite: string): boolean;
  /** Live cluster nodes this node sees, itself included; the gauge exists only in a cluster. */
  clusterNodes?(): number;
}

/** Upper bounds (s) of the job duration histogram. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * One label set of the job metrics (labels already bounded). Counted here on the hot path —
 * a few number additions — and handed to prom-client when it is scraped: prom-client's own
 * children validate and hash their labels on every call.
 */
interface JobSeries {
  readonly labels: { suite: string; pool: string; outcome: string };
  /** The counter's child, looked up once; `uncounted` jobs are added to it at the next scrape. */
  readonly total: Counter.Internal;
  uncounted: number;
  /** Observations per bucket (not cumulative); beyond the last bound only in `count`. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * flowtest_job_duration_seconds, read from the job series at scrape time. It gives the
 * registry what prom-client's Histogram gives it (same lines, same order).
 */
class JobDurationHistogram {
  readonly name = 'flowtest_job_duration_seconds';
  readonly help = 'Time from accepting a dispatch to answering it, by suite, pool and outcome';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['suite', 'pool', 'outcome'];

  constructor(readonly series: () => Iterable<JobSeries>) {}

  async getForPromString(): Promise<{ name: string; help: string; type: string; values: object[]; aggregator: string }> {
    const values: object[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series()) {
      let acc = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        acc += s.buckets[i];
        values.push({ labels: { le: DURATION_BUCKETS[i] }, sharedLabels: s.labels, value: acc, metricName: bucket, exemplar: null });
      }
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket, exemplar: null },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count`, exemplar: undefined },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's get(): each value's labels with the label set spread in. */
  async get(): Promise<{ name: string; help: string; type: string; values: object[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => {
      const { sharedLabels, labels, ...rest } = v as { sharedLabels: Record<string, string>; labels: Record<string, string | number> };
      return { ...rest, labels: { ...labels, ...sharedLabels } };
    });
    return data;
  }

  reset(): void {}
}

/** Registers a metric that is not one of prom-client's classes (in field order, as theirs are). */
function registered<M extends { name: string }>(registry: Registry, metric: M): M {
  registry.registerMetric(metric as unknown as Metric);
  return metric;
}

export class Metrics {
  readonly registry = new Registry();
  readonly jobsTotal = new Counter({
    name: 'flowtest_jobs_total',
    help: 'Dispatches that ended, by suite, pool and outcome (ok or the error code)',
    labelNames: ['suite', 'pool', 'outcome'] as const,
    registers: [this.registry],
    collect: () => this.#countJobs(),
  });
  /** Read from the job series at scrape time (JobDurationHistogram). */
  readonly jobDuration = registered(this.registry, new JobDurationHistogram(() => this.#series.values()));
  readonly lateResults = new Counter({
    name: 'flowtest_late_results_total',
    help: 'Results for unknown or already finished jobs, dropped',
    registers: [this.registry],
  });
  readonly workerConnections = new Counter({
    name: 'flowtest_worker_connections_total',
    help: 'Worker sockets accepted, by suite and pool',
    labelNames: ['suite', 'pool'] as const,
    registers: [this.registry],
  });
  readonly workerDisconnections = new Counter({
    name: 'flowtest_worker_disconnections_total',
    help: 'Worker sockets ended, by suite, pool and reason',
    labelNames: ['suite', 'pool', 'reason'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'flowtest_auth_failures_total',
    help: 'Requests and socket handshakes refused for their token or rate, by kind and transport',
    labelNames: ['kind', 'transport'] as const,
    registers: [this.registry],
  });

  readonly #source: MetricsSource;
  /** Pools a worker has connected as, by suite (bounded by MAX_POOL_LABELS in all). */
  readonly #seenPools = new Map<string, Set<string>>();
  #seenPoolCount = 0;
  /** Job series by their bounded labels (`suite/pool/outcome`), in the order first seen. Owner: jobEnded. */
  readonly #series = new Map<string, JobSeries>();
  /** The same series by the names jobEnded is called with, for names that are their own labels. */
  readonly #jobChildren = new Map<string, Map<string, Map<string, JobSeries>>>();

  constructor(source: MetricsSource) {
    this.#source = source;
    collectDefaultMetrics({ register: this.registry });
    for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    const labels = this.#poolLabels.bind(this);
    new Gauge({
      name: 'flowtest_workers_connected',
      help: 'Open worker sockets by suite and pool',
      labelNames: ['suite', 'pool'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { suite, pool, count } of source.workerCounts()) this.inc(labels(suite, pool), count);
      },
    });
    new Gauge({
      name: 'flowtest_jobs_in_flight',
      help: 'Jobs held by workers, by suite and pool (sum over labels: all jobs in flight)',
      labelNames: ['suite', 'pool'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        // Always present, so that sum() reads 0 rather than nothing on an idle server.
        this.set({ suite: OTHER_LABEL, pool: OTHER_LABEL }, 0);
        for (const { suite, pool, inFlight } of source.poolJobs()) if (inFlight > 0) this.inc(labels(suite, pool), inFlight);
      },
    });
    new Gauge({
      name: 'flowtest_jobs_queued',
      help: 'Jobs waiting in pool queues, by suite and pool (sum over labels: all queued jobs)',
      labelNames: ['suite', 'pool'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        this.set({ suite: OTHER_LABEL, pool: OTHER_LABEL }, 0);
        for (const { suite, pool, queued } of source.poolJobs()) if (queued > 0) this.inc(labels(suite, pool), queued);
      },
    });
    const clusterNodes = source.clusterNodes?.bind(source);
    if (clusterNodes) {
      new Gauge({
        name: 'flowtest_cluster_nodes',
        help: 'Live cluster nodes this node sees, itself included',
        registers: [this.registry],
        collect() {
          this.set(clusterNodes());
        },
      });
    }
  }

  /** Labels a (suite, pool) pair within the bounds. */
  #poolLabels(suite: string, pool: string): { suite: string; pool: string } {
    if (!this.#source.knowsSuite(suite)) return { suite: OTHER_LABEL, pool: OTHER_LABEL };
    return { suite, pool: this.#seenPools.get(suite)?.has(pool) ? pool : OTHER_LABEL };
  }

  /** Makes `pool` of `suite` a label of its own (a worker connected as it), within MAX_POOL_LABELS. */
  notePool(suite: string, pool: string): void {
    if (!this.#source.knowsSuite(suite)) return;
    let pools = this.#seenPools.get(suite);
    if (pools?.has(pool) || this.#seenPoolCount >= MAX_POOL_LABELS) return;
    if (!pools) this.#seenPools.set(suite, (pools = new Set()));
    pools.add(pool);
    this.#seenPoolCount += 1;
  }

  /** Records a finished job. Hot path: one map walk to its series once a label set is known, then a few additions. */
  jobEnded(suite: string, pool: string, outcome: string, seconds: number): void {
    let byPool = this.#jobChildren.get(suite);
    let byOutcome = byPool?.get(pool);
    let series = byOutcome?.get(outcome);
    if (!series) {
      const bounded = this.#poolLabels(suite, pool);
      const labels = { ...bounded, outcome: outcome === 'ok' || isErrorCode(outcome) ? outcome : OTHER_LABEL };
      const key = `${labels.suite}/${labels.pool}/${labels.outcome}`;
      series = this.#series.get(key);
      if (!series) {
        series = { labels, total: this.jobsTotal.labels(labels), uncounted: 0, buckets: new Float64Array(DURATION_BUCKETS.length), sum: 0, count: 0 };
        this.#series.set(key, series);
      }
      // Cache only label sets that name themselves: a made-up name would grow the cache, not the scrape.
      if (bounded.suite === suite && bounded.pool === pool && labels.outcome === outcome) {
        if (!byPool) this.#jobChildren.set(suite, (byPool = new Map()));
        if (!byOutcome) byPool.set(pool, (byOutcome = new Map()));
        byOutcome.set(outcome, series);
      }
    }
    series.uncounted += 1;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]) {
        series.buckets[i] += 1;
        break;
      }
    }
    series.sum += seconds;
    series.count += 1;
  }

  /** The job counter's collect(): jobs counted since the last scrape go to prom-client. */
  #countJobs(): void {
    for (const s of this.#series.values()) {
      if (s.uncounted === 0) continue;
      s.total.inc(s.uncounted);
      s.uncounted = 0;
    }
  }

  /** Counts a worker socket accepted (and makes its pool a label). */
  workerConnected(suite: string, pool: string): void {
    this.notePool(suite, pool);
    this.workerConnections.inc(this.#poolLabels(suite, pool));
  }

  /** Counts a worker socket ended; `reason` is the session's text, mapped by `disconnectReason`. */
  workerDisconnected(suite: string, pool: string, reason: string): void {
    this.workerDisconnections.inc({ ...this.#poolLabels(suite, pool), reason: disconnectReason(reason) });
  }

  /** Counts a refused request or handshake. */
  authFailed(kind: AuthFailureKind, transport: AuthFailureTransport): void {
    this.authFailures.inc({ kind, transport });
  }

  /** Records a result for an unknown or already finished job. */
  lateResult(): void {
    this.lateResults.inc();
  }
}
