/**
 * Prometheus metrics (prom-client), one registry per server. Gauges are read from
 * the live tables at scrape time, so they cannot drift from what the server holds.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the gauges read at scrape time. */
export interface MetricsSource {
  workerCounts(): Iterable<{ suite: string; pool: string; count: number }>;
  jobsInFlight(): number;
  jobsQueued(): number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly jobsTotal = new Counter({
    name: 'flowtest_jobs_total',
    help: 'Dispatches that ended, by suite and outcome (ok or the error code)',
    labelNames: ['suite', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'flowtest_job_duration_seconds',
    help: 'Time from accepting a dispatch to answering it',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly lateResults = new Counter({
    name: 'flowtest_late_results_total',
    help: 'Results for unknown or already finished jobs, dropped',
    registers: [this.registry],
  });

  constructor(source: MetricsSource) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'flowtest_workers_connected',
      help: 'Open worker sockets by suite and pool',
      labelNames: ['suite', 'pool'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { suite, pool, count } of source.workerCounts()) this.set({ suite, pool }, count);
      },
    });
    new Gauge({
      name: 'flowtest_jobs_in_flight',
      help: 'Jobs held by workers',
      registers: [this.registry],
      collect() {
        this.set(source.jobsInFlight());
      },
    });
    new Gauge({
      name: 'flowtest_jobs_queued',
      help: 'Jobs waiting in pool queues',
      registers: [this.registry],
      collect() {
        this.set(source.jobsQueued());
      },
    });
  }

  /** Records a finished job. (`pool` is not a label yet.) */
  jobEnded(suite: string, _pool: string, outcome: string, seconds: number): void {
    this.jobsTotal.inc({ suite, outcome });
    this.jobDuration.observe(seconds);
  }

  /** Records a result for an unknown or already finished job. */
  lateResult(): void {
    this.lateResults.inc();
  }
}
