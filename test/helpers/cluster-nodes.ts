/**
 * Cluster nodes in the test process: a private nats-server and N servers started with
 * `nats`, each with its node id (`n1`, `n2`, …). Waits until every node sees every other.
 */
import type { TestContext } from 'node:test';
import type { ServerOptions } from '../../server/config.ts';
import { startNats, type NatsServerProc } from './nats.ts';
import { startTestServer, type TestServer } from './server.ts';
import { waitUntil } from './wait.ts';

export interface TestCluster {
  nats: NatsServerProc;
  nodes: TestServer[];
}

export async function startCluster(t: TestContext, count: number, options: ServerOptions = {}): Promise<TestCluster> {
  const nats = await startNats(t);
  const nodes: TestServer[] = [];
  for (let i = 1; i <= count; i++) nodes.push(await startTestServer(t, { nats: nats.url, nodeId: `n${i}`, ...options }));
  await waitFormed(nodes);
  return { nats, nodes };
}

/** Every node sees all of them live. */
export async function waitFormed(nodes: TestServer[], timeoutMs = 3000): Promise<void> {
  await waitUntil(() => nodes.every((n) => n.cluster?.liveNodes === nodes.length), timeoutMs, `${nodes.length} nodes to see each other`);
}

/** `at` has heard `from` announce the pool with at least `ready` ready workers and `free` free slots. */
export async function waitAnnounced(at: TestServer, from: TestServer, pool = 'pool1', ready = 1, free = 0, timeoutMs = 3000): Promise<void> {
  const node = from.cluster!.nodeId;
  await waitUntil(
    () => {
      const p = at.cluster!.membership.peer(node)?.pools.get(`acme/${pool}`);
      return ready === 0 ? !p || p.ready === 0 : !!p && p.ready >= ready && p.freeSlots >= free;
    },
    timeoutMs,
    `${at.cluster!.nodeId} to hear ${node}'s pool ${pool} (ready ${ready}, free ${free})`,
  );
}

/** Every cluster table and local table on every node is empty. */
export async function waitAllEmpty(nodes: TestServer[], timeoutMs = 3000): Promise<void> {
  await waitUntil(
    () =>
      nodes.every((n) => {
        const c = n.cluster!.clusterStats();
        const s = n.router.stats();
        return c.arrivals === 0 && c.atNodes === 0 && c.held === 0 && c.heldFrom === 0 && c.runsByPool === 0 && c.listings === 0 && c.transfers === 0 && c.outbox === 0 && s.pending === 0 && s.queued === 0 && s.inFlight === 0;
      }),
    timeoutMs,
    'every table on every node empty',
  );
}
