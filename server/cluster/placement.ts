/**
 * Which node takes a job: pure, so it is tested without NATS. The node with the most free
 * slots in the pool wins, this node on ties; when no node has a free slot the job queues at
 * a node with ready workers, the shortest queue first (this node on ties); with no ready
 * worker anywhere there is no node.
 */

export interface NodePoolView {
  node: string;
  ready: number;
  freeSlots: number;
  queued: number;
}

/** `self` is this node's view, or null when it has no such pool; `others` the live, routable peers'. */
export function chooseNode(self: NodePoolView | null, others: Iterable<NodePoolView>): string | null {
  let best: NodePoolView | null = self && self.ready > 0 ? self : null;
  for (const o of others) {
    if (o.ready <= 0) continue;
    if (!best) {
      best = o;
      continue;
    }
    if (best.freeSlots > 0 || o.freeSlots > 0) {
      if (o.freeSlots > best.freeSlots) best = o;
    } else if (o.queued < best.queued) best = o;
  }
  return best?.node ?? null;
}
