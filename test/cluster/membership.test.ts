/** Node membership against a real nats-server: join, announcements, clean leave, death, restart, duplicate ids. */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { PoolAnnounce } from '../../server/cluster/cluster-protocol.ts';
import { defaultNodeId, isNodeIdLive, isValidNodeId, Membership, type LeaveReason, type Peer } from '../../server/cluster/membership.ts';
import { NatsLink } from '../../server/cluster/nats-link.ts';
import { createLogger } from '../../server/logger.ts';
import { startNats } from '../helpers/nats.ts';
import { waitUntil } from '../helpers/wait.ts';

const log = createLogger({ level: 'silent' });

interface Node {
  link: NatsLink;
  m: Membership;
  pools: PoolAnnounce[];
  events: string[];
  leftAt: Map<string, number>;
}

async function node(t: TestContext, url: string, id: string, nonce = `${id}-1`): Promise<Node> {
  const link = await NatsLink.open({ urls: url, name: id }, log);
  t.after(() => link.close());
  const n: Node = { link, m: undefined as unknown as Membership, pools: [], events: [], leftAt: new Map() };
  n.m = new Membership(
    link,
    { nodeId: id, nonce, localPools: () => n.pools, localWorkers: () => n.pools.length },
    {
      joined: (p: Peer) => n.events.push(`joined ${p.node}`),
      left: (p: Peer, r: LeaveReason) => {
        n.events.push(`left ${p.node} ${r}`);
        n.leftAt.set(p.node, Date.now());
      },
      updated: () => {},
    },
    log,
  );
  t.after(() => n.m.close());
  n.m.start();
  return n;
}

test('node ids: default is host name plus a suffix, subject-safe', () => {
  const id = defaultNodeId('web-1.example.com');
  assert.match(id, /^web-1-example-com-[A-Za-z0-9_-]{6}$/);
  assert.ok(isValidNodeId(id));
  assert.ok(isValidNodeId(defaultNodeId('...')));
  assert.equal(isValidNodeId('a.b'), false);
  assert.equal(isValidNodeId('a*'), false);
});

test('membership: nodes see each other with their pools; a clean leave is seen at once', async (t) => {
  const nats = await startNats(t);
  const a = await node(t, nats.url, 'a');
  const b = await node(t, nats.url, 'b');
  b.pools = [{ suite: 's', pool: 'p', ready: 2, freeSlots: 7, queued: 1 }];
  await waitUntil(() => a.m.liveNodes === 2 && b.m.liveNodes === 2, 2000, 'both nodes to see each other');
  await waitUntil(() => a.m.peer('b')?.pools.get('s/p')?.freeSlots === 7, 2000, 'b pools at a');
  b.m.beginLeave();
  await waitUntil(() => a.m.peer('b')?.leaving === true, 1000, 'a to see b leaving');
  assert.equal(a.m.liveNodes, 2, 'a leaving node is still live: it finishes what it holds');
  const t0 = Date.now();
  b.m.close();
  await waitUntil(() => a.m.liveNodes === 1, 1000, 'a to see b leave');
  assert.ok(Date.now() - t0 < 300, 'a clean leave is not a timeout');
  assert.deepEqual(a.events, ['joined b', 'left b left']);
});

test('membership: a node that stops announcing is dead after ~1.4 s, never over 3 s', async (t) => {
  const nats = await startNats(t);
  const a = await node(t, nats.url, 'a');
  const b = await node(t, nats.url, 'b');
  await waitUntil(() => a.m.liveNodes === 2, 2000, 'a to see b');
  // Cut b off without a leave: its connection closes as a killed process's would.
  const t0 = Date.now();
  await b.link.nc.close();
  await waitUntil(() => a.events.includes('left b dead'), 3000, 'b dead at a');
  const took = a.leftAt.get('b')! - t0;
  assert.ok(took >= 900 && took <= 2000, `dead after ${took} ms`);
  assert.equal(a.m.liveNodes, 1);
});

test('membership: a restarted node (same id, new nonce) ends its old instance', async (t) => {
  const nats = await startNats(t);
  const a = await node(t, nats.url, 'a');
  const b1 = await node(t, nats.url, 'b', 'b-1');
  await waitUntil(() => a.m.liveNodes === 2, 2000, 'a to see b');
  await b1.link.nc.close();
  await node(t, nats.url, 'b', 'b-2');
  await waitUntil(() => a.events.includes('left b restarted'), 2000, 'the old b gone');
  assert.equal(a.m.peer('b')?.nonce, 'b-2');
  assert.deepEqual(a.events.slice(0, 3), ['joined b', 'left b restarted', 'joined b']);
});

test('membership: a node that lost NATS sees the others dead, and they see it dead; both rejoin', async (t) => {
  const nats = await startNats(t);
  const a = await node(t, nats.url, 'a');
  const b = await node(t, nats.url, 'b');
  await waitUntil(() => a.m.liveNodes === 2 && b.m.liveNodes === 2, 2000, 'joined');
  await nats.kill();
  await waitUntil(() => a.m.liveNodes === 1 && b.m.liveNodes === 1, 3000, 'each alone');
  await nats.restart();
  await waitUntil(() => a.m.liveNodes === 2 && b.m.liveNodes === 2, 5000, 'rejoined');
});

test('duplicate node id: a live id answers, a free one has no responders', async (t) => {
  const nats = await startNats(t);
  await node(t, nats.url, 'taken');
  const probe = await NatsLink.open({ urls: nats.url, name: 'probe' }, log);
  t.after(() => probe.close());
  assert.equal(await isNodeIdLive(probe, 'taken'), true);
  const t0 = Date.now();
  assert.equal(await isNodeIdLive(probe, 'free'), false);
  assert.ok(Date.now() - t0 < 500, 'no responders is immediate');
});

test('duplicate node id: an id held by a silent subscriber (a frozen node) counts as taken', async (t) => {
  const nats = await startNats(t);
  const frozen = await NatsLink.open({ urls: nats.url, name: 'frozen' }, log);
  t.after(() => frozen.close());
  frozen.nc.subscribe('flowtest.cluster.node.stuck.ping', { callback: () => {} });
  await frozen.nc.flush();
  const probe = await NatsLink.open({ urls: nats.url, name: 'probe' }, log);
  t.after(() => probe.close());
  assert.equal(await isNodeIdLive(probe, 'stuck', 300), true);
});
