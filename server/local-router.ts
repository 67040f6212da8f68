/**
 * Single-node router: placement over the workers the registry reports (pools, queues,
 * the least-loaded pick), with the pending table (pending-jobs.ts) holding each accepted
 * job's caller and deadline.
 *
 * Every job ends in `PendingJobs.complete`, which calls `jobEnding` here: it clears the
 * no-worker timer, takes the job out of its pool's queue or its worker (which is told to
 * cancel when the job ended for a reason of ours), records the metric and the console
 * event and hands the freed slot on; the table then answers the caller. `workerGone`
 * completes every job the vanished worker held — the fail-fast promise of the product.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { FlowtestError } from '../shared/errors.ts';
import type { DispatchRequest, DispatchSuccess, ResultFrame, WorkerInfo } from '../shared/protocol.ts';
import { Job } from './job.ts';
import type { Metrics } from './metrics.ts';
import { PendingJobs, type JobRelease } from './pending-jobs.ts';
import { Pool, poolKey } from './pool.ts';
import type { RouterEvent, RouterObserver } from './router-events.ts';
import { dispatchWithSignal, type JobCaller, type Outcome, type PoolStats, type Router, type RouterStats, type WorkerHandle } from './router.ts';

export interface LocalRouterOptions {
  defaultTimeoutMs: number;
  maxQueue: number;
  /**
   * Record each job's end in `flowtest_jobs_total` and the duration histogram (default true).
   * A cluster node turns it off: there the node that answers the caller counts (cluster-router.ts).
   */
  countJobs?: boolean;
}

export class LocalRouter implements Router, JobRelease {
  readonly #pending = new PendingJobs(this);
  /** Pools with a worker or a queued job; removed when both are gone. */
  readonly #pools = new Map<string, Pool<WorkerHandle>>();
  /** Workers by id, from `workerUp` to `workerGone`. */
  readonly #workers = new Map<string, WorkerHandle>();
  #shuttingDown = false;
  #metrics: Metrics | null = null;
  /** Observers (the console); each added by `observe`, removed by the function it returns. */
  readonly #observers = new Set<RouterObserver>();

  constructor(
    readonly options: LocalRouterOptions,
    readonly log: Logger,
  ) {}

  /** Metrics are created after the router because their gauges read from it. */
  useMetrics(metrics: Metrics): void {
    this.#metrics = metrics;
  }

  observe(observer: RouterObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Callers check `#observers.size` first, so no event is built when nobody listens. */
  #emit(event: RouterEvent): void {
    for (const o of this.#observers) o(event);
  }

  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess> {
    if (this.#shuttingDown) return Promise.reject(new FlowtestError('shutting_down', 'the server is shutting down'));
    return dispatchWithSignal(this, suite, body, signal);
  }

  submit(suite: string, body: DispatchRequest, caller: JobCaller): string | null {
    if (this.#shuttingDown) {
      caller.settle({ ok: false, error: new FlowtestError('shutting_down', 'the server is shutting down') });
      return null;
    }
    const timeoutMs = body.timeoutMs ?? this.options.defaultTimeoutMs;
    const waitForWorkerMs = Math.min(body.waitForWorkerMs ?? 0, timeoutMs);
    const job = new Job(suite, body.pool, body.request, timeoutMs, waitForWorkerMs, body.workerId, caller);
    const existing = this.#pools.get(poolKey(suite, body.pool));
    const worker = existing?.pick(job);
    // Only a job that must wait needs to know whether any worker could ever take it.
    const canEverRun = !worker && (existing?.canEverRun(job) ?? false);
    if (!worker) {
      if (!canEverRun && waitForWorkerMs === 0) return this.#refuse(job, new FlowtestError('no_worker', noWorkerMessage(job)));
      if ((existing?.queue.size ?? 0) >= this.options.maxQueue) {
        return this.#refuse(job, new FlowtestError('overloaded', `the queue of pool ${body.pool} is full (${this.options.maxQueue} jobs)`));
      }
    }
    this.#pending.add(job);
    if (worker) {
      this.#send(job, worker);
      return job.id;
    }
    const pool = existing ?? this.#createPool(suite, body.pool);
    pool.queue.add(job);
    if (!canEverRun) this.#startNoWorkerTimer(job);
    return job.id;
  }

  cancel(jobId: string): void {
    this.#pending.complete(jobId, { ok: false, error: new FlowtestError('cancelled', 'the client went away'), cancelReason: 'client_aborted' });
  }

  // ---- WorkerEvents (from the registry) ----

  workerUp(worker: WorkerHandle): void {
    this.#workers.set(worker.id, worker);
    const pool = this.#pools.get(poolKey(worker.suite, worker.pool)) ?? this.#createPool(worker.suite, worker.pool);
    pool.workers.add(worker);
    this.#metrics?.workerConnected(worker.suite, worker.pool);
    if (this.#observers.size > 0) this.#emit({ kind: 'worker-up', worker: worker.info() });
    this.#recheckQueued(pool);
    this.#pump(pool);
  }

  workerResult(worker: WorkerHandle, frame: ResultFrame): void {
    const job = this.#pending.get(frame.id);
    if (!job || job.worker !== worker) {
      this.#metrics?.lateResult();
      return;
    }
    if (frame.response) {
      const durationMs = Math.round((performance.now() - job.acceptedAt) * 100) / 100;
      this.#pending.complete(job.id, { ok: true, value: { id: job.id, workerId: worker.id, durationMs, response: frame.response } });
    } else if (frame.error) {
      this.#pending.complete(job.id, { ok: false, error: new FlowtestError(frame.error.code, frame.error.message) });
    }
  }

  workerDraining(worker: WorkerHandle): void {
    if (this.#observers.size > 0) this.#emit({ kind: 'worker-draining', worker: worker.info() });
    const pool = this.#pools.get(poolKey(worker.suite, worker.pool));
    if (pool) this.#recheckQueued(pool);
  }

  workerWritable(worker: WorkerHandle): void {
    const pool = this.#pools.get(poolKey(worker.suite, worker.pool));
    if (pool) this.#pump(pool);
  }

  workerGone(worker: WorkerHandle, jobIds: readonly string[], reason: string): void {
    this.#workers.delete(worker.id);
    const pool = this.#pools.get(poolKey(worker.suite, worker.pool));
    pool?.workers.delete(worker);
    for (const id of jobIds) {
      if (this.#pending.get(id)?.worker !== worker) continue;
      this.#pending.complete(id, { ok: false, error: new FlowtestError('worker_disconnected', `worker ${worker.id} disconnected: ${reason}`) });
    }
    this.#metrics?.workerDisconnected(worker.suite, worker.pool, reason);
    if (this.#observers.size > 0) this.#emit({ kind: 'worker-down', workerId: worker.id, suite: worker.suite, pool: worker.pool, reason });
    if (pool) {
      this.#recheckQueued(pool);
      this.#dropIfEmpty(pool);
    }
  }

  // ---- listing and stats ----

  listWorkers(suite?: string): WorkerInfo[] {
    const out: WorkerInfo[] = [];
    for (const w of this.#workers.values()) if (suite === undefined || w.suite === suite) out.push(w.info());
    return out;
  }

  *workerCounts(): Iterable<{ suite: string; pool: string; count: number }> {
    for (const p of this.#pools.values()) if (p.workers.size > 0) yield { suite: p.suite, pool: p.name, count: p.workers.size };
  }

  /** Per pool: jobs held by its workers and jobs in its queue (the metrics' gauges). */
  *poolJobs(): Iterable<{ suite: string; pool: string; inFlight: number; queued: number }> {
    for (const p of this.#pools.values()) {
      let inFlight = 0;
      for (const w of p.workers) inFlight += w.inFlight;
      yield { suite: p.suite, pool: p.name, inFlight, queued: p.queue.size };
    }
  }

  /** Per pool: workers by state, free slots and queue depth (the console's "why not?"). */
  poolStats(): PoolStats[] {
    const out: PoolStats[] = [];
    for (const p of this.#pools.values()) out.push(statsOf(p));
    return out;
  }

  /** One pool's stats (a cluster node routes by them), or undefined when it has no worker and no queue. */
  poolStat(suite: string, pool: string): PoolStats | undefined {
    const p = this.#pools.get(poolKey(suite, pool));
    return p ? statsOf(p) : undefined;
  }

  /** Whether a pending job waits in a queue or is held by a worker; undefined once it ended. */
  jobState(jobId: string): 'queued' | 'held' | undefined {
    const state = this.#pending.get(jobId)?.state;
    return state === 'queued' || state === 'held' ? state : undefined;
  }

  stats(): RouterStats {
    let queued = 0;
    for (const p of this.#pools.values()) queued += p.queue.size;
    let inFlight = 0;
    for (const w of this.#workers.values()) inFlight += w.inFlight;
    return { pending: this.#pending.size, queued, inFlight, workers: this.#workers.size, pools: this.#pools.size };
  }

  // ---- shutdown ----

  async shutdown(graceMs: number): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    await this.#pending.idle(graceMs);
    for (const job of [...this.#pending.values()]) {
      this.#pending.complete(job.id, { ok: false, error: new FlowtestError('shutting_down', 'the server shut down before the job ended'), cancelReason: 'shutting_down' });
    }
  }

  // ---- JobRelease (from the pending table) ----

  jobEnding(job: Job, outcome: Outcome): void {
    const worker = job.state === 'held' ? job.worker : null;
    this.#clearNoWorkerTimer(job);
    this.#ended(job, worker?.id ?? null, outcome);
    const pool = this.#pools.get(poolKey(job.suite, job.pool));
    if (worker) {
      job.worker = null;
      // May close a draining worker that now holds nothing (its 'worker-down' follows this job's end).
      worker.release(job.id, outcome.ok ? undefined : outcome.cancelReason);
      if (pool) this.#pump(pool);
    } else {
      pool?.queue.delete(job);
    }
    if (pool) this.#dropIfEmpty(pool);
  }

  // ---- internals ----

  #createPool(suite: string, name: string): Pool<WorkerHandle> {
    const pool = new Pool<WorkerHandle>(suite, name);
    this.#pools.set(poolKey(suite, name), pool);
    return pool;
  }

  #dropIfEmpty(pool: Pool<WorkerHandle>): void {
    if (pool.empty && this.#pools.get(poolKey(pool.suite, pool.name)) === pool) this.#pools.delete(poolKey(pool.suite, pool.name));
  }

  #send(job: Job, worker: WorkerHandle): void {
    job.state = 'held';
    job.worker = worker;
    worker.sendJob(job.id, job.remainingMs(), job.request);
    if (this.#observers.size > 0) this.#emit({ kind: 'job-start', id: job.id, suite: job.suite, pool: job.pool, workerId: worker.id });
  }

  /** Moves queued jobs to free slots, oldest first. */
  #pump(pool: Pool<WorkerHandle>): void {
    for (const job of pool.queue) {
      if (!pool.hasFreeSlot()) return;
      const worker = pool.pick(job);
      if (!worker) continue;
      pool.queue.delete(job);
      this.#clearNoWorkerTimer(job);
      this.#send(job, worker);
    }
  }

  /** A queued job that no open worker could take fails with no_worker after its waitForWorkerMs. */
  #recheckQueued(pool: Pool<WorkerHandle>): void {
    for (const job of pool.queue) {
      const canRun = pool.canEverRun(job);
      if (canRun) this.#clearNoWorkerTimer(job);
      else if (!job.noWorkerTimer) this.#startNoWorkerTimer(job);
    }
  }

  /** With waitForWorkerMs 0 still a timer (of 0): callers iterate the queue this job is in. */
  #startNoWorkerTimer(job: Job): void {
    job.noWorkerTimer = setTimeout(this.#onNoWorker, job.waitForWorkerMs, job);
  }

  readonly #onNoWorker = (job: Job): void => {
    job.noWorkerTimer = null;
    this.#pending.complete(job.id, { ok: false, error: new FlowtestError('no_worker', noWorkerMessage(job)) });
  };

  #clearNoWorkerTimer(job: Job): void {
    if (job.noWorkerTimer) clearTimeout(job.noWorkerTimer);
    job.noWorkerTimer = null;
  }

  /** A job refused before it entered any table: recorded, answered, no id. */
  #refuse(job: Job, error: FlowtestError): null {
    job.state = 'done';
    const outcome: Outcome = { ok: false, error };
    this.#ended(job, null, outcome);
    job.caller.settle(outcome);
    return null;
  }

  /** Metrics and observers for a job that ended. */
  #ended(job: Job, workerId: string | null, outcome: Outcome): void {
    const durationMs = performance.now() - job.acceptedAt;
    const code = outcome.ok ? 'ok' : outcome.error.code;
    if (this.options.countJobs !== false) this.#metrics?.jobEnded(job.suite, job.pool, code, durationMs / 1000);
    if (this.#observers.size === 0) return;
    this.#emit({
      kind: 'job-end',
      job: {
        id: job.id,
        suite: job.suite,
        pool: job.pool,
        workerId,
        acceptedAt: Date.now() - durationMs,
        durationMs: Math.round(durationMs * 100) / 100,
        outcome: code,
        request: job.request,
        response: outcome.ok ? outcome.value.response : null,
        error: outcome.ok ? null : { code: outcome.error.code, message: outcome.error.message },
      },
    });
  }
}

function statsOf(p: Pool<WorkerHandle>): PoolStats {
  let ready = 0;
  let draining = 0;
  let freeSlots = 0;
  for (const w of p.workers) {
    if (w.ready) {
      ready += 1;
      freeSlots += Math.max(0, w.concurrency - w.inFlight);
    } else draining += 1;
  }
  return { suite: p.suite, pool: p.name, ready, draining, freeSlots, queued: p.queue.size };
}

function noWorkerMessage(job: Job): string {
  const what = job.pinnedWorkerId ? `worker ${job.pinnedWorkerId} is not open and ready in pool ${job.pool}` : `no open worker in pool ${job.pool}`;
  return job.waitForWorkerMs > 0 ? `${what} after waiting ${job.waitForWorkerMs} ms` : what;
}
