/**
 * Every other node's workers, as their holders told us: a full listing when a node joins
 * (or when its announced count disagrees with ours), then up / draining / down events.
 * Listings at this node and `workerId` pinning read it; a dead node's workers leave with it.
 */
import type { WorkerInfo } from '../../shared/protocol.ts';

export class WorkerDirectory {
  /** Workers by node, then by id. Owner: this directory; a node's map goes when the node does. */
  readonly #byNode = new Map<string, Map<string, WorkerInfo>>();
  /** Worker id → node, for pinning. */
  readonly #nodeOf = new Map<string, string>();

  /** Replaces a node's workers with a full listing. */
  replace(node: string, workers: readonly WorkerInfo[]): void {
    this.dropNode(node);
    const m = new Map<string, WorkerInfo>();
    for (const w of workers) {
      m.set(w.id, { ...w, node });
      this.#nodeOf.set(w.id, node);
    }
    this.#byNode.set(node, m);
  }

  /** A worker came up or changed state on `node`. */
  upsert(node: string, worker: WorkerInfo): void {
    let m = this.#byNode.get(node);
    if (!m) {
      m = new Map();
      this.#byNode.set(node, m);
    }
    m.set(worker.id, { ...worker, node });
    this.#nodeOf.set(worker.id, node);
  }

  remove(node: string, workerId: string): void {
    const m = this.#byNode.get(node);
    if (!m?.delete(workerId)) return;
    if (this.#nodeOf.get(workerId) === node) this.#nodeOf.delete(workerId);
  }

  dropNode(node: string): void {
    const m = this.#byNode.get(node);
    if (!m) return;
    for (const id of m.keys()) if (this.#nodeOf.get(id) === node) this.#nodeOf.delete(id);
    this.#byNode.delete(node);
  }

  /** A node's workers (for the console when the node goes). */
  ofNode(node: string): WorkerInfo[] {
    return [...(this.#byNode.get(node)?.values() ?? [])];
  }

  get(node: string, workerId: string): WorkerInfo | undefined {
    return this.#byNode.get(node)?.get(workerId);
  }

  /** The node holding a worker, if any other node does. */
  nodeOf(workerId: string): string | undefined {
    return this.#nodeOf.get(workerId);
  }

  count(node: string): number {
    return this.#byNode.get(node)?.size ?? 0;
  }

  /** Every remote worker (of one suite when given). */
  list(suite?: string): WorkerInfo[] {
    const out: WorkerInfo[] = [];
    for (const m of this.#byNode.values()) for (const w of m.values()) if (suite === undefined || w.suite === suite) out.push(w);
    return out;
  }

  /** Entries held (tests check the tables empty). */
  get size(): number {
    return this.#nodeOf.size;
  }

  clear(): void {
    this.#byNode.clear();
    this.#nodeOf.clear();
  }
}
