/**
 * Jobs this node placed in its own LocalRouter — for a dispatch that arrived here or for a job
 * another node sent — by pool, so that a pool's queued jobs can be taken back out (never held,
 * so placing them elsewhere is no retry) when its last ready worker here leaves.
 */
import type { LocalRouter } from '../local-router.ts';
import { poolKey } from '../pool.ts';

/** One job in the LocalRouter on behalf of an owner. */
export interface LocalRun {
  readonly suite: string;
  readonly pool: string;
  readonly pinned: boolean;
  /** The LocalRouter's id while placed there. */
  innerId: string | null;
  /** Set while the job is taken back out of the queue: its settle is to be ignored. */
  withdrawing: boolean;
}

export class LocalRuns<Owner> {
  /** Runs by `suite/pool`; added by `add`, removed when they settle or are withdrawn. */
  readonly #byPool = new Map<string, Map<LocalRun, Owner>>();

  constructor(readonly inner: Pick<LocalRouter, 'jobState' | 'cancel'>) {}

  /** Pools with runs (tests: 0 once every job ended). */
  get pools(): number {
    return this.#byPool.size;
  }

  add(run: LocalRun, owner: Owner): void {
    const key = poolKey(run.suite, run.pool);
    let m = this.#byPool.get(key);
    if (!m) {
      m = new Map();
      this.#byPool.set(key, m);
    }
    m.set(run, owner);
  }

  remove(run: LocalRun): void {
    const key = poolKey(run.suite, run.pool);
    const m = this.#byPool.get(key);
    if (!m?.delete(run)) return;
    if (m.size === 0) this.#byPool.delete(key);
  }

  /** A copy of a pool's runs (callers change the table while they go through it). */
  inPool(key: string): [LocalRun, Owner][] {
    const m = this.#byPool.get(key);
    return m ? [...m] : [];
  }

  /** Takes a queued (never held) run out of the LocalRouter without answering anyone. */
  withdraw(run: LocalRun): boolean {
    if (run.innerId === null || this.inner.jobState(run.innerId) !== 'queued') return false;
    run.withdrawing = true;
    this.inner.cancel(run.innerId);
    this.remove(run);
    return true;
  }
}
