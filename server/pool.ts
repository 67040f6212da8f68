/**
 * A pool: the open workers of one suite that share a name, and the FIFO queue of
 * jobs waiting for a slot among them. Routing choice is pure and lives here.
 */
import type { Job } from './job.ts';

/** What routing needs to know of a worker. */
export interface SlotView {
  readonly id: string;
  readonly inFlight: number;
  readonly concurrency: number;
  /** Open, not draining. */
  readonly ready: boolean;
  /** Socket not backed up over its high-water mark. */
  readonly writable: boolean;
}

/**
 * The ready worker with the fewest jobs in flight relative to its concurrency and a free
 * slot; ties go to the one with more free slots, then to the earliest. With `pinnedId`
 * only that worker is considered.
 */
export function pickLeastLoaded<W extends SlotView>(workers: Iterable<W>, pinnedId?: string): W | undefined {
  let best: W | undefined;
  let bestLoad = Infinity;
  let bestFree = -1;
  for (const w of workers) {
    if (pinnedId !== undefined && w.id !== pinnedId) continue;
    if (!w.ready || !w.writable || w.inFlight >= w.concurrency) continue;
    const load = w.inFlight / w.concurrency;
    const free = w.concurrency - w.inFlight;
    if (load < bestLoad || (load === bestLoad && free > bestFree)) {
      best = w;
      bestLoad = load;
      bestFree = free;
    }
  }
  return best;
}

/** Whether any ready worker could take the job once a slot frees. */
export function hasEligibleWorker(workers: Iterable<SlotView>, pinnedId?: string): boolean {
  for (const w of workers) if (w.ready && (pinnedId === undefined || w.id === pinnedId)) return true;
  return false;
}

export class Pool<W extends SlotView = SlotView> {
  /** Open sessions of this pool, ready or draining. Owner: the dispatcher. */
  readonly workers = new Set<W>();
  /** Jobs waiting for a slot, in arrival order (a Set keeps insertion order and deletes in O(1)). */
  readonly queue = new Set<Job>();

  constructor(
    readonly suite: string,
    readonly name: string,
  ) {}

  pick(job: Job): W | undefined {
    return pickLeastLoaded(this.workers, job.pinnedWorkerId);
  }

  canEverRun(job: Job): boolean {
    return hasEligibleWorker(this.workers, job.pinnedWorkerId);
  }

  hasFreeSlot(): boolean {
    for (const w of this.workers) if (w.ready && w.writable && w.inFlight < w.concurrency) return true;
    return false;
  }

  get empty(): boolean {
    return this.workers.size === 0 && this.queue.size === 0;
  }
}

export function poolKey(suite: string, pool: string): string {
  return `${suite}/${pool}`;
}
