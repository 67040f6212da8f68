/**
 * In-memory router: pools, the pending-jobs table and each job's single end.
 *
 * Every job ends in `#finish`, the one removal path: it clears the job's timers and
 * abort listener, takes it out of the table, its pool's queue and its worker's held
 * map, tells the worker to cancel when the job ended for a reason of ours, records
 * the metric and answers the caller. `onGone` calls it for every job a vanished
 * worker holds — the fail-fast promise of the product.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { FlowtestError } from '../shared/errors.ts';
import type { DispatchRequest, DispatchSuccess, ResultFrame, WorkerInfo } from '../shared/protocol.ts';
import { Job } from './job.ts';
import type { Metrics } from './metrics.ts';
import { Pool, poolKey } from './pool.ts';
import type { RouterEvent, RouterObserver } from './router-events.ts';
import type { PoolStats, Router, RouterStats } from './router.ts';
import type { SessionHost, WorkerSession } from './worker-session.ts';

export interface LocalRouterOptions {
  defaultTimeoutMs: number;
  maxQueue: number;
}

type Ending = { ok: true; value: DispatchSuccess } | { ok: false; error: FlowtestError; cancelReason?: string };

export class LocalRouter implements Router, SessionHost {
  /** Owner of every accepted job until it ends. */
  readonly #jobs = new Map<string, Job>();
  /** Pools with a worker or a queued job; removed when both are gone. */
  readonly #pools = new Map<string, Pool<WorkerSession>>();
  /** Open sessions by worker id. */
  readonly #sessions = new Map<string, WorkerSession>();
  #shuttingDown = false;
  /** Set while shutdown waits for the table to empty; called by #finish. */
  #onIdle: (() => void) | null = null;
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

  /** Calls `observer` with every router event from now on; returns its remover. */
  observe(observer: RouterObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  #emit(make: () => RouterEvent): void {
    if (this.#observers.size === 0) return;
    const event = make();
    for (const o of this.#observers) o(event);
  }

  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess> {
    if (this.#shuttingDown) return Promise.reject(new FlowtestError('shutting_down', 'the server is shutting down'));
    if (signal.aborted) return Promise.reject(new FlowtestError('cancelled', 'the client went away'));
    const timeoutMs = body.timeoutMs ?? this.options.defaultTimeoutMs;
    const waitForWorkerMs = Math.min(body.waitForWorkerMs ?? 0, timeoutMs);
    return new Promise<DispatchSuccess>((resolve, reject) => {
      const job = new Job(suite, body.pool, body.request, timeoutMs, waitForWorkerMs, body.workerId, { resolve, reject });
      const key = poolKey(suite, body.pool);
      const existing = this.#pools.get(key);
      const worker = existing?.pick(job);
      // Only a job that must wait needs to know whether any worker could ever take it.
      const canEverRun = !worker && (existing?.canEverRun(job) ?? false);
      if (!worker) {
        if (!canEverRun && waitForWorkerMs === 0) {
          this.#reject(job, new FlowtestError('no_worker', noWorkerMessage(job)));
          return;
        }
        if ((existing?.queue.size ?? 0) >= this.options.maxQueue) {
          this.#reject(job, new FlowtestError('overloaded', `the queue of pool ${body.pool} is full (${this.options.maxQueue} jobs)`));
          return;
        }
      }
      this.#jobs.set(job.id, job);
      job.deadlineTimer = setTimeout(() => {
        job.deadlineTimer = null;
        this.#finish(job, { ok: false, error: new FlowtestError('timeout', `no answer within ${timeoutMs} ms`), cancelReason: 'timeout' });
      }, timeoutMs);
      const onAbort = () => this.#finish(job, { ok: false, error: new FlowtestError('cancelled', 'the client went away'), cancelReason: 'client_aborted' });
      signal.addEventListener('abort', onAbort, { once: true });
      job.detachAbort = () => signal.removeEventListener('abort', onAbort);

      if (worker) {
        this.#send(job, worker);
        return;
      }
      const pool = existing ?? this.#createPool(suite, body.pool);
      pool.queue.add(job);
      if (!canEverRun) this.#startNoWorkerTimer(job);
    });
  }

  addWorker(session: WorkerSession): void {
    this.#sessions.set(session.id, session);
    const key = poolKey(session.suite, session.name);
    const pool = this.#pools.get(key) ?? this.#createPool(session.suite, session.name);
    pool.workers.add(session);
    this.#emit(() => ({ kind: 'worker-up', worker: session.info() }));
    this.#recheckQueued(pool);
    this.#pump(pool);
  }

  // ---- SessionHost ----

  onResult(session: WorkerSession, frame: ResultFrame): void {
    const job = session.held.get(frame.id);
    if (!job) {
      this.#metrics?.lateResults.inc();
      return;
    }
    if (frame.response) {
      const durationMs = Math.round((performance.now() - job.acceptedAt) * 100) / 100;
      this.#finish(job, { ok: true, value: { id: job.id, workerId: session.id, durationMs, response: frame.response } });
    } else if (frame.error) {
      this.#finish(job, { ok: false, error: new FlowtestError(frame.error.code, frame.error.message) });
    }
  }

  onDrain(session: WorkerSession): void {
    const pool = this.#pools.get(poolKey(session.suite, session.name));
    this.log.info({ workerId: session.id, suite: session.suite, pool: session.name }, 'worker draining');
    this.#emit(() => ({ kind: 'worker-draining', worker: session.info() }));
    if (pool) this.#recheckQueued(pool);
    this.#closeIfDrained(session);
  }

  /**
   * A draining worker is closed (1000) by the server once it holds nothing: only the server
   * knows that no job routed to it before its drain frame arrived is still on the way.
   */
  #closeIfDrained(session: WorkerSession): void {
    if (session.state === 'draining' && session.held.size === 0) session.close(1000, 'drained');
  }

  onWritable(session: WorkerSession): void {
    const pool = this.#pools.get(poolKey(session.suite, session.name));
    if (pool) this.#pump(pool);
  }

  onGone(session: WorkerSession, reason: string): void {
    this.#sessions.delete(session.id);
    const key = poolKey(session.suite, session.name);
    const pool = this.#pools.get(key);
    pool?.workers.delete(session);
    const held = [...session.held.values()];
    for (const job of held) {
      this.#finish(job, { ok: false, error: new FlowtestError('worker_disconnected', `worker ${session.id} disconnected: ${reason}`) });
    }
    this.log.info({ workerId: session.id, suite: session.suite, pool: session.name, reason, failedJobs: held.length }, 'worker gone');
    this.#emit(() => ({ kind: 'worker-down', workerId: session.id, suite: session.suite, pool: session.name, reason }));
    if (pool) {
      this.#recheckQueued(pool);
      this.#dropIfEmpty(pool);
    }
  }

  // ---- listing and stats ----

  listWorkers(suite?: string): WorkerInfo[] {
    const out: WorkerInfo[] = [];
    for (const s of this.#sessions.values()) if (suite === undefined || s.suite === suite) out.push(s.info());
    return out;
  }

  *workerCounts(): Iterable<{ suite: string; pool: string; count: number }> {
    for (const p of this.#pools.values()) if (p.workers.size > 0) yield { suite: p.suite, pool: p.name, count: p.workers.size };
  }

  /** Per pool: workers by state, free slots and queue depth (the console's "why not?"). */
  poolStats(): PoolStats[] {
    const out: PoolStats[] = [];
    for (const p of this.#pools.values()) {
      let ready = 0;
      let draining = 0;
      let freeSlots = 0;
      for (const w of p.workers) {
        if (w.ready) {
          ready += 1;
          freeSlots += Math.max(0, w.concurrency - w.inFlight);
        } else draining += 1;
      }
      out.push({ suite: p.suite, pool: p.name, ready, draining, freeSlots, queued: p.queue.size });
    }
    return out;
  }

  stats(): RouterStats {
    let queued = 0;
    for (const p of this.#pools.values()) queued += p.queue.size;
    let inFlight = 0;
    for (const s of this.#sessions.values()) inFlight += s.held.size;
    return { pending: this.#jobs.size, queued, inFlight, workers: this.#sessions.size, pools: this.#pools.size };
  }

  // ---- shutdown ----

  async shutdown(graceMs: number): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    if (this.#jobs.size > 0 && graceMs > 0) {
      let grace: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#onIdle = resolve;
        grace = setTimeout(resolve, graceMs);
      });
      clearTimeout(grace);
      this.#onIdle = null;
    }
    for (const job of [...this.#jobs.values()]) {
      this.#finish(job, { ok: false, error: new FlowtestError('shutting_down', 'the server shut down before the job ended'), cancelReason: 'shutting_down' });
    }
    for (const session of [...this.#sessions.values()]) session.close(1001, 'server shutting down');
  }

  // ---- internals ----

  #createPool(suite: string, name: string): Pool<WorkerSession> {
    const pool = new Pool<WorkerSession>(suite, name);
    this.#pools.set(poolKey(suite, name), pool);
    return pool;
  }

  #dropIfEmpty(pool: Pool<WorkerSession>): void {
    if (pool.empty) this.#pools.delete(poolKey(pool.suite, pool.name));
  }

  #send(job: Job, worker: WorkerSession): void {
    job.state = 'held';
    job.worker = worker;
    worker.held.set(job.id, job);
    worker.send({ type: 'job', id: job.id, timeoutMs: job.remainingMs(), request: job.request });
    this.#emit(() => ({ kind: 'job-start', id: job.id, suite: job.suite, pool: job.pool, workerId: worker.id }));
  }

  /** Moves queued jobs to free slots, oldest first. */
  #pump(pool: Pool<WorkerSession>): void {
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
  #recheckQueued(pool: Pool<WorkerSession>): void {
    for (const job of pool.queue) {
      const canRun = pool.canEverRun(job);
      if (canRun) this.#clearNoWorkerTimer(job);
      else if (!job.noWorkerTimer) this.#startNoWorkerTimer(job);
    }
  }

  #startNoWorkerTimer(job: Job): void {
    const fail = () => {
      job.noWorkerTimer = null;
      this.#finish(job, { ok: false, error: new FlowtestError('no_worker', noWorkerMessage(job)) });
    };
    if (job.waitForWorkerMs === 0) {
      // Not synchronously: callers iterate the queue this job is in.
      job.noWorkerTimer = setTimeout(fail, 0);
    } else {
      job.noWorkerTimer = setTimeout(fail, job.waitForWorkerMs);
    }
  }

  #clearNoWorkerTimer(job: Job): void {
    if (job.noWorkerTimer) clearTimeout(job.noWorkerTimer);
    job.noWorkerTimer = null;
  }

  /** A job refused before it entered any table. */
  #reject(job: Job, error: FlowtestError): void {
    job.state = 'done';
    this.#ended(job, null, { ok: false, error });
    job.settle.reject(error);
  }

  /** Metrics and observers for a job that ended. */
  #ended(job: Job, workerId: string | null, ending: Ending): void {
    const durationMs = performance.now() - job.acceptedAt;
    this.#metrics?.jobEnded(job.suite, ending.ok ? 'ok' : ending.error.code, durationMs / 1000);
    this.#emit(() => ({
      kind: 'job-end',
      job: {
        id: job.id,
        suite: job.suite,
        pool: job.pool,
        workerId,
        acceptedAt: Date.now() - durationMs,
        durationMs: Math.round(durationMs * 100) / 100,
        outcome: ending.ok ? 'ok' : ending.error.code,
        request: job.request,
        response: ending.ok ? ending.value.response : null,
        error: ending.ok ? null : { code: ending.error.code, message: ending.error.message },
      },
    }));
  }

  /** The one way a job ends. Idempotent: a job is answered exactly once. */
  #finish(job: Job, ending: Ending): void {
    if (job.state === 'done') return;
    const wasHeld = job.state === 'held';
    job.state = 'done';
    if (job.deadlineTimer) clearTimeout(job.deadlineTimer);
    job.deadlineTimer = null;
    this.#clearNoWorkerTimer(job);
    job.detachAbort?.();
    job.detachAbort = null;
    this.#jobs.delete(job.id);
    const pool = this.#pools.get(poolKey(job.suite, job.pool));
    const workerOfJob = job.worker;
    const workerId = workerOfJob?.id ?? null;
    if (wasHeld && job.worker) {
      const worker = job.worker;
      job.worker = null;
      worker.held.delete(job.id);
      if (!ending.ok && ending.cancelReason) worker.send({ type: 'cancel', id: job.id, reason: ending.cancelReason });
    } else {
      pool?.queue.delete(job);
    }

    this.#ended(job, workerId, ending);
    if (ending.ok) job.settle.resolve(ending.value);
    else job.settle.reject(ending.error);

    if (pool) {
      if (wasHeld) this.#pump(pool);
      this.#dropIfEmpty(pool);
    }
    if (this.#jobs.size === 0) this.#onIdle?.();
    if (workerOfJob) this.#closeIfDrained(workerOfJob);
  }
}

function noWorkerMessage(job: Job): string {
  const what = job.pinnedWorkerId ? `worker ${job.pinnedWorkerId} is not open and ready in pool ${job.pool}` : `no open worker in pool ${job.pool}`;
  return job.waitForWorkerMs > 0 ? `${what} after waiting ${job.waitForWorkerMs} ms` : what;
}
