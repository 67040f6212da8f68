/**
 * HTTP listings read where each worker is: a listing asks every live node for its rows and
 * waits at most `LIST_WAIT_MS`; a node that has not answered by then is listed as the worker
 * directory last knew it.
 */
import { nanoid } from 'nanoid';
import type { WorkerInfo } from '../../shared/protocol.ts';

/** How long a listing waits for the other nodes' rows. */
export const LIST_WAIT_MS = 500;

interface Wait {
  waiting: Set<string>;
  rows: WorkerInfo[];
  /** Owner: this wait; cleared by `done`. */
  timer: NodeJS.Timeout;
  done: () => void;
}

export interface ListingSources {
  /** This node's rows (node field set). */
  local(suite?: string): WorkerInfo[];
  /** What the directory knows of a node that did not answer. */
  known(node: string): WorkerInfo[];
  /** Asks a node for its rows; false when it could not be sent. */
  ask(node: string, reqId: string): boolean;
}

export class FreshListings {
  /** Listings waiting for rows, by request id; removed when answered, timed out or closed. */
  readonly #waits = new Map<string, Wait>();

  constructor(readonly sources: ListingSources) {}

  get size(): number {
    return this.#waits.size;
  }

  /** A listing of `peers`' rows and this node's. */
  list(peers: readonly string[], suite?: string): Promise<WorkerInfo[]> {
    if (peers.length === 0) return Promise.resolve(this.sources.local(suite));
    const reqId = nanoid();
    const matches = (r: WorkerInfo) => suite === undefined || r.suite === suite;
    return new Promise<WorkerInfo[]>((resolve) => {
      const w: Wait = {
        waiting: new Set(peers),
        rows: [],
        timer: setTimeout(() => w.done(), LIST_WAIT_MS),
        done: () => {
          clearTimeout(w.timer);
          if (this.#waits.get(reqId) !== w) return;
          this.#waits.delete(reqId);
          const out = this.sources.local(suite);
          for (const r of w.rows) if (matches(r)) out.push(r);
          for (const node of w.waiting) for (const r of this.sources.known(node)) if (matches(r)) out.push(r);
          resolve(out);
        },
      };
      this.#waits.set(reqId, w);
      for (const node of peers) if (!this.sources.ask(node, reqId)) w.waiting.delete(node);
      if (w.waiting.size === 0) w.done();
    });
  }

  /** A node's rows arrived. */
  answered(reqId: string, node: string, rows: readonly WorkerInfo[]): void {
    const w = this.#waits.get(reqId);
    if (!w?.waiting.delete(node)) return;
    for (const r of rows) w.rows.push({ ...r, node });
    if (w.waiting.size === 0) w.done();
  }

  /** A node is gone: no listing waits for it (its workers are not listed). */
  nodeGone(node: string): void {
    for (const w of [...this.#waits.values()]) if (w.waiting.delete(node) && w.waiting.size === 0) w.done();
  }

  /** Answers every waiting listing with what it has. */
  close(): void {
    for (const w of [...this.#waits.values()]) w.done();
  }
}
