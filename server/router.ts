/**
 * The routing seam: what the HTTP API, the console and the worker registry see of a router.
 *
 * Module map (server/):
 * - worker-session.ts  one worker socket: welcome, heartbeat, frames, the ids of the jobs it
 *                      holds. It is a `WorkerHandle`; it reports to its host, the registry.
 * - worker-registry.ts node-local worker registry: open sessions by id, logs, closes draining
 *                      and (on shutdown) all sockets; tells the router `WorkerEvents`
 *                      ("up", "result", "draining", "writable", "gone with jobs [ids]").
 * - worker-gateway.ts  the socket endpoint: checks the handshake, hands a started session to
 *                      the registry.
 * - router.ts          these interfaces. local-router.ts implements `Router` for one node:
 *                      placement (pools, queues, least-loaded pick over `WorkerHandle`s).
 * - pending-jobs.ts    the pending table keyed by job id: each accepted job's caller and
 *                      deadline; `complete(id, outcome)` is the one place a job ends.
 * - job.ts, pool.ts    one job's record; one pool's workers and queue, and the pure pick.
 * - http-api.ts, console/  callers (`submit`/`cancel`, or `dispatch` with a signal) and
 *                      observers (`observe`: the console's feed).
 * A cluster router implements `Router` over the same registry (local workers arrive through
 * `WorkerEvents`) and reaches remote workers through its own `WorkerHandle`s.
 */
import { FlowtestError } from '../shared/errors.ts';
import type { DispatchRequest, DispatchSuccess, HttpRequest, ResultFrame, WorkerInfo } from '../shared/protocol.ts';
import type { SlotView } from './pool.ts';
import type { RouterObserver } from './router-events.ts';

export interface RouterStats {
  /** Jobs accepted and not yet answered (queued + held). */
  pending: number;
  queued: number;
  inFlight: number;
  workers: number;
  pools: number;
}

/** One pool's workers by state, free slots and queue depth. */
export interface PoolStats {
  suite: string;
  pool: string;
  ready: number;
  draining: number;
  freeSlots: number;
  queued: number;
}

/** How a job ended. `cancelReason` set: the job ended for a reason of ours, and a worker holding it is told to cancel. */
export type Outcome = { ok: true; value: DispatchSuccess } | { ok: false; error: FlowtestError; cancelReason?: string };

/** Who waits for a job's answer. `settle` is called exactly once, possibly inside `submit`; it must not throw. */
export interface JobCaller {
  settle(outcome: Outcome): void;
}

/**
 * A worker as placement sees it: a local session, or (in a cluster) a proxy for one on
 * another node. `inFlight` counts the jobs sent and not yet released.
 */
export interface WorkerHandle extends SlotView {
  readonly suite: string;
  readonly pool: string;
  readonly state: 'ready' | 'draining' | 'gone';
  info(): WorkerInfo;
  /** Sends a job; the worker holds (counts) it until `release`. */
  sendJob(jobId: string, timeoutMs: number, request: HttpRequest): void;
  /**
   * The job ended: the worker no longer holds it. With `cancelReason` the worker is told to
   * cancel it. A draining worker left holding nothing is closed (1000).
   */
  release(jobId: string, cancelReason?: string): void;
  close(code: number, reason: string): void;
}

/** What the worker registry tells the router, in the order it happens on the socket. */
export interface WorkerEvents {
  workerUp(worker: WorkerHandle): void;
  workerResult(worker: WorkerHandle, frame: ResultFrame): void;
  workerDraining(worker: WorkerHandle): void;
  /** The worker's socket drained under its high-water mark: it can take jobs again. */
  workerWritable(worker: WorkerHandle): void;
  /** Called once, the moment the worker is gone; `jobIds` are the jobs it held then (fail them now). */
  workerGone(worker: WorkerHandle, jobIds: readonly string[], reason: string): void;
}

export interface Router extends WorkerEvents {
  /**
   * Accepts one job for a worker of `suite`/`body.pool`. Returns the job id (for `cancel`),
   * or null when the caller was already answered (refused: shutting_down, no_worker,
   * overloaded). The answer always comes through `caller.settle`, exactly once.
   */
  submit(suite: string, body: DispatchRequest, caller: JobCaller): string | null;
  /** The caller went away: the job ends with `cancelled` (no-op when it already ended). */
  cancel(jobId: string): void;
  /**
   * `submit` as a promise: resolves with the target's response, rejects with a FlowtestError
   * carrying a contract code. Aborting `signal` cancels the job. (Console, tests.)
   */
  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess>;
  /** Calls `observer` with every router event from now on; returns its remover. */
  observe(observer: RouterObserver): () => void;
  listWorkers(suite?: string): WorkerInfo[];
  /**
   * The HTTP listing when a router has a fresher one than `listWorkers` (a cluster asks every
   * node for its rows, so in flight, RTT and last pong are read where the worker is). Optional.
   */
  listWorkersFresh?(suite?: string): Promise<WorkerInfo[]>;
  workerCounts(): Iterable<{ suite: string; pool: string; count: number }>;
  poolStats(): PoolStats[];
  /** Per pool: jobs held by its workers and jobs in its queue (the metrics' gauges). */
  poolJobs(): Iterable<{ suite: string; pool: string; inFlight: number; queued: number }>;
  stats(): RouterStats;
  /**
   * Stops taking dispatches, waits up to `graceMs` for accepted jobs to end and fails the
   * rest with `shutting_down`. Sockets are the registry's to close, after this.
   */
  shutdown(graceMs: number): Promise<void>;
}

/** `dispatch` built on `submit`/`cancel`: one promise and one abort listener, removed when the job ends. */
export function dispatchWithSignal(router: Pick<Router, 'submit' | 'cancel'>, suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess> {
  if (signal.aborted) return Promise.reject(new FlowtestError('cancelled', 'the client went away'));
  return new Promise<DispatchSuccess>((resolve, reject) => {
    let jobId: string | null = null;
    const onAbort = () => {
      if (jobId !== null) router.cancel(jobId);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    jobId = router.submit(suite, body, {
      settle(outcome) {
        signal.removeEventListener('abort', onAbort);
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      },
    });
  });
}
