/**
 * The console's "why not?" and its at-a-glance counters: pure functions and a small
 * rate window, tested without sockets.
 */
import type { Counters, PoolView } from './console-protocol.ts';

import type { PoolStats } from '../router.ts';

/** Why a dispatch to this pool would not run right now, or null when it would. */
export function whyNot(p: PoolStats): string | null {
  if (p.ready + p.draining === 0) return 'no workers';
  if (p.ready === 0) return `all ${p.draining} draining`;
  if (p.freeSlots === 0) return p.queued > 0 ? `all full and ${p.queued} queued` : 'all full';
  return null;
}

export function poolView(p: PoolStats): PoolView {
  return { suite: p.suite, pool: p.pool, ready: p.ready, draining: p.draining, freeSlots: p.freeSlots, queued: p.queued, whyNot: whyNot(p) };
}

/**
 * Pools to show: every pool the router has now, plus pools seen recently (a job or a
 * worker) that the router has since dropped — those show "no workers". The memory is
 * bounded: the oldest remembered pool is forgotten past `max`.
 */
export class PoolMemory {
  // Owner: the console feed. Insertion order is recency order (re-inserted on each sighting).
  readonly #seen = new Map<string, { suite: string; pool: string }>();
  /** The most recent sighting: seeing it again changes nothing (every job of a busy pool does). */
  #lastSuite: string | null = null;
  #lastPool: string | null = null;
  constructor(readonly max: number) {}

  see(suite: string, pool: string): void {
    if (suite === this.#lastSuite && pool === this.#lastPool) return;
    this.#lastSuite = suite;
    this.#lastPool = pool;
    const key = `${suite}/${pool}`;
    this.#seen.delete(key);
    this.#seen.set(key, { suite, pool });
    if (this.#seen.size > this.max) this.#seen.delete(this.#seen.keys().next().value as string);
  }

  /** Current stats merged with remembered pools, sorted by suite then pool. */
  views(current: Iterable<PoolStats>): PoolView[] {
    const out = new Map<string, PoolView>();
    for (const p of current) {
      const key = `${p.suite}/${p.pool}`;
      if (!this.#seen.has(key)) this.see(p.suite, p.pool);
      out.set(key, poolView(p));
    }
    for (const [key, p] of this.#seen) {
      if (!out.has(key)) out.set(key, poolView({ ...p, ready: 0, draining: 0, freeSlots: 0, queued: 0 }));
    }
    return [...out.values()].sort((a, b) => a.suite.localeCompare(b.suite) || a.pool.localeCompare(b.pool));
  }
}

/** Jobs and failures per second over a sliding window of whole-second buckets. */
export class RateWindow {
  // Owner: the console feed; a fixed ring of `windowSec` buckets, so memory never grows.
  readonly #buckets: { sec: number; jobs: number; errors: number }[];
  readonly #startedAt: number;

  constructor(
    readonly windowSec: number,
    now: number,
  ) {
    this.#buckets = Array.from({ length: windowSec }, () => ({ sec: -1, jobs: 0, errors: 0 }));
    this.#startedAt = now;
  }

  record(now: number, failed: boolean): void {
    const sec = Math.floor(now / 1000);
    const b = this.#buckets[sec % this.windowSec];
    if (b.sec !== sec) {
      b.sec = sec;
      b.jobs = 0;
      b.errors = 0;
    }
    b.jobs += 1;
    if (failed) b.errors += 1;
  }

  /** Rates over the last `windowSec` seconds (or since start, when shorter). */
  read(now: number): { jobsPerSec: number; errorRate: number | null } {
    const sec = Math.floor(now / 1000);
    let jobs = 0;
    let errors = 0;
    for (const b of this.#buckets) {
      if (b.sec > sec - this.windowSec && b.sec <= sec) {
        jobs += b.jobs;
        errors += b.errors;
      }
    }
    // The buckets cover windowSec - 1 whole seconds and the part of this one elapsed,
    // or less right after start; under a second is counted as one (no inflated rates).
    const covered = Math.min(this.windowSec - 1 + (now % 1000) / 1000, (now - this.#startedAt) / 1000);
    const jobsPerSec = Math.round((jobs / Math.max(covered, 1)) * 10) / 10;
    return { jobsPerSec, errorRate: jobs === 0 ? null : Math.round((errors / jobs) * 1000) / 1000 };
  }
}

export function counters(stats: { workers: number; inFlight: number; queued: number }, rates: { jobsPerSec: number; errorRate: number | null }, windowSec: number): Counters {
  return { workers: stats.workers, inFlight: stats.inFlight, queued: stats.queued, jobsPerSec: rates.jobsPerSec, errorRate: rates.errorRate, windowSec };
}
