/**
 * The pending table: every accepted job by id, with its caller and its deadline, until
 * it ends. `complete` is the one place a job ends — a result, an error, a deadline, a
 * cancel, a vanished worker, shutdown: each is a `complete(id, outcome)`; the second and
 * later calls for an id find nothing and do nothing, so a job is answered exactly once.
 */
import { FlowtestError } from '../shared/errors.ts';
import type { Job } from './job.ts';
import type { Outcome } from './router.ts';
import { EmptyWait } from './empty-wait.ts';

/** What the table asks of placement when a job ends. */
export interface JobRelease {
  /**
   * Called by `complete` after the job left the table and before its caller is answered:
   * take the job out of its queue or worker (cancelling it there when `outcome.cancelReason`),
   * record it, and hand a freed slot on.
   */
  jobEnding(job: Job, outcome: Outcome): void;
}

export class PendingJobs {
  /** Owner of every accepted job until it ends. */
  readonly #jobs = new Map<string, Job>();
  /** Shutdown's wait for the table to empty. */
  readonly #emptyWait = new EmptyWait();

  constructor(readonly placement: JobRelease) {}

  get size(): number {
    return this.#jobs.size;
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  values(): IterableIterator<Job> {
    return this.#jobs.values();
  }

  /** Takes an accepted job; its deadline runs from now. */
  add(job: Job): void {
    this.#jobs.set(job.id, job);
    // The job rides as the timer's argument: no closure per job.
    job.deadlineTimer = setTimeout(this.#onDeadline, job.timeoutMs, job);
  }

  readonly #onDeadline = (job: Job): void => {
    job.deadlineTimer = null;
    this.complete(job.id, { ok: false, error: new FlowtestError('timeout', `no answer within ${job.timeoutMs} ms`), cancelReason: 'timeout' });
  };

  /** Ends job `id` with `outcome`; false when it is not (or no longer) pending. */
  complete(id: string, outcome: Outcome): boolean {
    const job = this.#jobs.get(id);
    if (!job) return false;
    this.#jobs.delete(id);
    if (job.deadlineTimer) clearTimeout(job.deadlineTimer);
    job.deadlineTimer = null;
    this.placement.jobEnding(job, outcome);
    job.state = 'done';
    job.caller.settle(outcome);
    if (this.#jobs.size === 0) this.#emptyWait.emptied();
    return true;
  }

  /** Resolves once the table is empty, or after `ms`. */
  idle(ms: number): Promise<void> {
    return this.#emptyWait.until(this.#jobs.size === 0, ms);
  }
}
