/**
 * The console page's store (server/console/static/store.js) under node:test: a pure
 * module the page imports as is. Messages are typed by the server's console protocol,
 * so a change there that the page does not follow fails the page's typecheck too.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConsoleServerMessage, Counters, JobRow, PoolView } from '../../server/console/console-protocol.ts';
import type { WorkerInfo } from '../../shared/protocol.ts';
import { applyDelta, applySnapshot, createStore, poolKey } from '../../server/console/static/store.js';

type Snapshot = Extract<ConsoleServerMessage, { type: 'snapshot' }>;
type Delta = Extract<ConsoleServerMessage, { type: 'delta' }>;

const counters: Counters = { workers: 1, inFlight: 0, queued: 0, jobsPerSec: 0, errorRate: null, windowSec: 10 };

function worker(id: string, over: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id, suite: 'acme', name: 'pool1', state: 'ready', concurrency: 2, inFlight: 0, connectedAt: new Date(0).toISOString(),
    lastPongAt: null, rttMs: null, agentVersion: null, remoteAddress: '::ffff:10.0.0.5', ...over,
  };
}

function job(seq: number): JobRow {
  return { seq, id: `j${seq}`, at: 1000 + seq, suite: 'acme', pool: 'pool1', workerId: 'w1', method: 'GET', url: 'http://t/x', status: 200, outcome: 'ok', durationMs: 1, replayable: false };
}

const pool: PoolView = { suite: 'acme', pool: 'pool1', ready: 1, draining: 0, freeSlots: 2, queued: 0, whyNot: null };

function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return { type: 'snapshot', serverTime: Date.now(), heartbeatMs: 5000, feedSize: 3, lastSeq: 2, workers: [worker('w1')], pools: [pool], jobs: [job(1), job(2)], counters, ...over };
}

function delta(over: Partial<Delta> = {}): Delta {
  return { type: 'delta', serverTime: Date.now(), workers: [], gone: [], jobs: [], counters, ...over };
}

test('store: a snapshot replaces everything and asks for a full render', () => {
  const store = createStore();
  store.workers.set('stale', worker('stale'));
  store.events.push({ at: 0, text: 'kept' });
  const changes = applySnapshot(store, snapshot({ serverTime: Date.now() + 60_000, feedSize: 1 }));
  assert.deepEqual(changes, { full: true });
  assert.deepEqual([...store.workers.keys()], ['w1']);
  assert.deepEqual([...store.pools.keys()], [poolKey('acme', 'pool1')]);
  assert.deepEqual(store.jobs.map((j) => j.seq), [2], 'only the newest feedSize jobs are kept');
  assert.equal(store.lastSeq, 2);
  assert.equal(store.heartbeatMs, 5000);
  assert.ok(Math.abs(store.clockOffsetMs - 60_000) < 1000, `clock offset ${store.clockOffsetMs}`);
  assert.equal(store.events.length, 1, 'worker events are not made up from a snapshot');
});

test('store: a delta upserts and removes workers, saying who joined and left', () => {
  const store = createStore();
  applySnapshot(store, snapshot());
  const changes = applyDelta(store, delta({ workers: [worker('w1', { inFlight: 1 }), worker('w2', { remoteAddress: '::ffff:10.0.0.9' })], gone: [] }));
  assert.deepEqual([...changes.workers], ['w1', 'w2']);
  assert.equal(store.workers.get('w1')?.inFlight, 1, 'whole records replace the old ones');
  assert.equal(store.events.length, 1, 'only the newcomer is an event');
  assert.match(store.events[0].text, /^worker w2 joined acme\/pool1 from 10\.0\.0\.9$/);

  const left = applyDelta(store, delta({ gone: [{ id: 'w1', suite: 'acme', pool: 'pool1', reason: 'heartbeat' }, { id: 'never-seen', suite: 'acme', pool: 'pool1', reason: 'x' }] }));
  assert.deepEqual(left.gone.map((w: WorkerInfo) => w.id), ['w1'], 'a departure of an unknown worker is ignored');
  assert.deepEqual([...store.workers.keys()], ['w2']);
  assert.match(store.events[0].text, /^worker w1 left acme\/pool1: heartbeat$/, 'newest event first');
});

test('store: delta jobs already in the snapshot are skipped; the feed keeps its size, counting what it dropped', () => {
  const store = createStore();
  applySnapshot(store, snapshot());
  const changes = applyDelta(store, delta({ jobs: [job(1), job(2), job(3), job(4)] }));
  assert.deepEqual(changes.jobs.map((j: JobRow) => j.seq), [3, 4]);
  assert.deepEqual(store.jobs.map((j) => j.seq), [2, 3, 4]);
  assert.equal(changes.dropped, 1);
  assert.equal(store.lastSeq, 4);
  assert.equal(applyDelta(store, delta({ jobs: [job(4)] })).jobs.length, 0, 'a repeated row is not added twice');
});

test('store: pools change only when a delta carries them; counters always follow the last message', () => {
  const store = createStore();
  applySnapshot(store, snapshot());
  const quiet = applyDelta(store, delta({ counters: { ...counters, queued: 5 } }));
  assert.equal(quiet.pools, false);
  assert.equal(store.pools.size, 1);
  assert.equal(store.counters?.queued, 5);
  const other: PoolView = { ...pool, pool: 'pool2', ready: 0, whyNot: 'no workers' };
  const moved = applyDelta(store, delta({ pools: [other] }));
  assert.equal(moved.pools, true);
  assert.deepEqual([...store.pools.keys()], ['acme/pool2']);
});

test('store: the event list keeps the 12 newest', () => {
  const store = createStore();
  applySnapshot(store, snapshot({ workers: [] }));
  for (let i = 0; i < 20; i++) applyDelta(store, delta({ workers: [worker(`w${String(i).padStart(8, '0')}`)] }));
  assert.equal(store.events.length, 12);
  assert.match(store.events[0].text, /^worker w0000001/);
});
