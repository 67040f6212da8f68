/** One dispatch from acceptance to its single answer. */
import { performance } from 'node:perf_hooks';
import { nanoid } from 'nanoid';
import type { FlowtestError } from '../shared/errors.ts';
import type { DispatchSuccess, HttpRequest } from '../shared/protocol.ts';
import type { WorkerSession } from './worker-session.ts';

export type JobState = 'queued' | 'held' | 'done';

export class Job {
  readonly id = nanoid();
  readonly acceptedAt = performance.now();
  readonly deadlineAt: number;
  state: JobState = 'queued';
  /** The session holding the job while `held`; the session's `held` map has the same entry. */
  worker: WorkerSession | null = null;
  /** Owner: the dispatcher; set at acceptance, cleared when the job ends. */
  deadlineTimer: NodeJS.Timeout | null = null;
  /** Owner: the dispatcher; set while queued with no worker that could ever take it. */
  noWorkerTimer: NodeJS.Timeout | null = null;
  /** Removes the caller's abort listener; owner: the dispatcher, called once when the job ends. */
  detachAbort: (() => void) | null = null;

  constructor(
    readonly suite: string,
    readonly pool: string,
    readonly request: HttpRequest,
    readonly timeoutMs: number,
    readonly waitForWorkerMs: number,
    readonly pinnedWorkerId: string | undefined,
    readonly settle: { resolve: (v: DispatchSuccess) => void; reject: (e: FlowtestError) => void },
  ) {
    this.deadlineAt = this.acceptedAt + timeoutMs;
  }

  /** Milliseconds left before the deadline, at least 1. */
  remainingMs(now = performance.now()): number {
    return Math.max(1, Math.ceil(this.deadlineAt - now));
  }
}
