/**
 * The holding node's side: jobs other nodes sent here run through this node's LocalRouter —
 * concurrency, queue and fail-fast stay with the node holding the worker sockets — and each
 * outcome goes back to the arrival node. A job whose arrival node gave up on it (cancel, or
 * that node died) is ended here without an answer; a queued one whose pool lost its last ready
 * worker here goes back (hand-back).
 */
import type { Outcome } from '../router.ts';
import type { LocalRouter } from '../local-router.ts';
import type { InboxMessage } from './cluster-protocol.ts';
import type { LocalRun, LocalRuns } from './local-runs.ts';
import type { NodeBus } from './node-bus.ts';

/** A job another node sent here. */
export interface Held {
  readonly key: string;
  readonly from: string;
  readonly id: string;
  readonly run: LocalRun;
  /** The arrival node gave up on it (cancel, or it died): no outcome is sent. */
  silenced: boolean;
}

export interface HeldJobsDeps {
  inner: LocalRouter;
  bus: NodeBus;
  /** Shared with the arrivals placed here: the hand-back goes through both. */
  runs: LocalRuns<unknown>;
  nodeId: string;
  shuttingDown(): boolean;
}

export class HeldJobs {
  /** Jobs from other nodes by `from/id`; removed when their local run ends or is handed back. */
  readonly #held = new Map<string, Held>();
  /** The same by arrival node, for ending them when that node goes. */
  readonly #from = new Map<string, Set<Held>>();

  constructor(readonly deps: HeldJobsDeps) {}

  get size(): number {
    return this.#held.size;
  }

  get nodes(): number {
    return this.#from.size;
  }

  /** A job arrived from another node. */
  receive(m: Extract<InboxMessage, { type: 'job' }>): void {
    const { inner, bus, runs, nodeId } = this.deps;
    const key = `${m.from}/${m.id}`;
    if (this.#held.has(key)) return;
    if (this.deps.shuttingDown()) {
      bus.deliver(m.from, { type: 'outcome', id: m.id, workerId: null, error: { code: 'shutting_down', message: 'the server is shutting down' } });
      return;
    }
    // Sent on an announcement that is out of date: no ready worker here now. Give it back
    // (it was never held) unless it is pinned — then the pinned worker's absence is the answer.
    if (m.workerId === undefined && (inner.poolStat(m.suite, m.pool)?.ready ?? 0) === 0) {
      bus.deliver(m.from, { type: 'handback', id: m.id, reason: `no ready worker in pool ${m.pool} on node ${nodeId}` });
      return;
    }
    const run: LocalRun = { suite: m.suite, pool: m.pool, pinned: m.workerId !== undefined, innerId: null, withdrawing: false };
    const h: Held = { key, from: m.from, id: m.id, run, silenced: false };
    this.#held.set(key, h);
    let set = this.#from.get(m.from);
    if (!set) {
      set = new Set();
      this.#from.set(m.from, set);
    }
    set.add(h);
    runs.add(run, h);
    const innerId = inner.submit(
      m.suite,
      { pool: m.pool, workerId: m.workerId, timeoutMs: m.timeoutMs, waitForWorkerMs: m.waitForWorkerMs, request: m.request },
      { settle: (o) => this.#settled(h, o) },
    );
    if (this.#held.get(key) === h) run.innerId = innerId;
  }

  /** The arrival node cancelled it. */
  cancel(from: string, id: string): void {
    const h = this.#held.get(`${from}/${id}`);
    if (h) this.#silence(h);
  }

  /** The arrival node is gone: its jobs end here (cancel to their workers), answering nobody. */
  nodeGone(node: string): void {
    const set = this.#from.get(node);
    if (set) for (const h of [...set]) this.#silence(h);
  }

  /** Gives a queued job back to its arrival node (its pool has no ready worker here any more). */
  handBack(h: Held, reason: string): void {
    if (!this.deps.runs.withdraw(h.run)) return;
    this.#drop(h);
    if (!h.silenced) this.deps.bus.deliver(h.from, { type: 'handback', id: h.id, reason });
  }

  #settled(h: Held, outcome: Outcome): void {
    this.deps.runs.remove(h.run);
    if (h.run.withdrawing) return;
    this.#drop(h);
    if (h.silenced) return;
    if (outcome.ok) {
      this.deps.bus.deliver(h.from, { type: 'outcome', id: h.id, workerId: outcome.value.workerId, response: outcome.value.response });
    } else {
      this.deps.bus.deliver(h.from, { type: 'outcome', id: h.id, workerId: null, error: { code: outcome.error.code, message: outcome.error.message } });
    }
  }

  #drop(h: Held): void {
    if (this.#held.get(h.key) !== h) return;
    this.#held.delete(h.key);
    const set = this.#from.get(h.from);
    set?.delete(h);
    if (set?.size === 0) this.#from.delete(h.from);
  }

  #silence(h: Held): void {
    h.silenced = true;
    if (h.run.innerId !== null) this.deps.inner.cancel(h.run.innerId);
    else {
      this.deps.runs.remove(h.run);
      this.#drop(h);
    }
  }
}
