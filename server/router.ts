/**
 * The routing interface the HTTP API and the worker gateway talk to. The in-memory
 * implementation (local-router.ts) serves a single node; a broker-backed one can
 * take its place for a cluster without touching the API or the sessions.
 */
import type { DispatchRequest, DispatchSuccess, WorkerInfo } from '../shared/protocol.ts';
import type { WorkerSession } from './worker-session.ts';

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

export interface Router {
  /**
   * Runs one job on a worker of `suite`/`body.pool`. Resolves with the target's response;
   * rejects with a FlowtestError carrying a contract code. Aborting `signal` cancels the job.
   */
  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess>;
  /** Takes a started session into its pool. */
  addWorker(session: WorkerSession): void;
  listWorkers(suite?: string): WorkerInfo[];
  workerCounts(): Iterable<{ suite: string; pool: string; count: number }>;
  stats(): RouterStats;
  /**
   * Stops taking dispatches, waits up to `graceMs` for accepted jobs to end, fails the
   * rest with `shutting_down` and closes every worker socket with 1001.
   */
  shutdown(graceMs: number): Promise<void>;
}
