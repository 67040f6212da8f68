/** One dispatch from acceptance to its single answer. */
import { performance } from 'node:perf_hooks';
import { nanoid } from 'nanoid';
import type { HttpRequest } from '../shared/protocol.ts';
import type { JobCaller, WorkerHandle } from './router.ts';

export type JobState = 'queued' | 'held' | 'done';

export class Job {
  readonly id = nanoid();
  readonly acceptedAt = performance.now();
  readonly deadlineAt: number;
  state: JobState = 'queued';
  /** The worker holding the job while `held` (it counts the job until released). Owner: the router. */
  worker: WorkerHandle | null = null;
  /** Owner: the pending table; set when the job enters it, cleared when the job ends. */
  deadlineTimer: NodeJS.Timeout | null = null;
  /** Owner: the router; set while queued with no worker that could ever take it. */
  noWorkerTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly suite: string,
    readonly pool: string,
    readonly request: HttpRequest,
    readonly timeoutMs: number,
    readonly waitForWorkerMs: number,
    readonly pinnedWorkerId: string | undefined,
    /** Answered once, by the pending table (or by the router for a job refused before it entered). */
    readonly caller: JobCaller,
  ) {
    this.deadlineAt = this.acceptedAt + timeoutMs;
  }

  /** Milliseconds left before the deadline, at least 1. */
  remainingMs(now = performance.now()): number {
    return Math.max(1, Math.ceil(this.deadlineAt - now));
  }
}
