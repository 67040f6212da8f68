/** Node choice and the worker directory: pure, no NATS. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseNode } from '../../server/cluster/placement.ts';
import { WorkerDirectory } from '../../server/cluster/worker-directory.ts';

const v = (node: string, ready: number, freeSlots: number, queued = 0) => ({ node, ready, freeSlots, queued });

test('placement: most free slots wins, this node on ties', () => {
  assert.equal(chooseNode(v('a', 1, 2), [v('b', 1, 3)]), 'b');
  assert.equal(chooseNode(v('a', 1, 3), [v('b', 1, 3)]), 'a');
  assert.equal(chooseNode(null, [v('b', 1, 1), v('c', 2, 4)]), 'c');
  assert.equal(chooseNode(v('a', 0, 0), [v('b', 1, 1)]), 'b');
});

test('placement: all full → queue at the shortest queue with ready workers, this node on ties', () => {
  assert.equal(chooseNode(v('a', 1, 0, 5), [v('b', 1, 0, 2)]), 'b');
  assert.equal(chooseNode(v('a', 1, 0, 2), [v('b', 1, 0, 2)]), 'a');
  assert.equal(chooseNode(v('a', 0, 0, 0), [v('b', 1, 0, 9)]), 'b', 'a node without ready workers never queues the job');
});

test('placement: no ready worker anywhere → no node', () => {
  assert.equal(chooseNode(null, []), null);
  assert.equal(chooseNode(v('a', 0, 0), [v('b', 0, 0, 3)]), null);
});

test('worker directory: listing, pinning lookup, a node leaves with its workers', () => {
  const d = new WorkerDirectory();
  const w = (id: string, suite = 's') => ({ id, suite, name: 'p', state: 'ready' as const, concurrency: 1, inFlight: 0, connectedAt: '', lastPongAt: null, rttMs: null, agentVersion: null, remoteAddress: null });
  d.replace('b', [w('w1'), w('w2', 't')]);
  d.upsert('c', w('w3'));
  assert.equal(d.nodeOf('w2'), 'b');
  assert.deepEqual(d.list('s').map((x) => `${x.id}@${x.node}`).sort(), ['w1@b', 'w3@c']);
  d.remove('b', 'w1');
  assert.equal(d.nodeOf('w1'), undefined);
  d.dropNode('b');
  assert.equal(d.list().length, 1);
  d.dropNode('c');
  assert.equal(d.size, 0);
});
