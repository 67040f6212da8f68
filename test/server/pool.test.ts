import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasEligibleWorker, pickLeastLoaded, type SlotView } from '../../server/pool.ts';

const w = (id: string, inFlight: number, concurrency: number, extra: Partial<SlotView> = {}): SlotView => ({ id, inFlight, concurrency, ready: true, writable: true, ...extra });

test('pickLeastLoaded: lowest inFlight/concurrency wins', () => {
  assert.equal(pickLeastLoaded([w('a', 2, 4), w('b', 1, 4), w('c', 3, 8)])?.id, 'b');
  assert.equal(pickLeastLoaded([w('a', 2, 4), w('c', 3, 8)])?.id, 'c');
  assert.equal(pickLeastLoaded([w('a', 1, 4), w('b', 0, 1)])?.id, 'b');
});

test('pickLeastLoaded: ties go to more free slots, then the earliest', () => {
  assert.equal(pickLeastLoaded([w('a', 0, 1), w('b', 0, 8)])?.id, 'b');
  assert.equal(pickLeastLoaded([w('a', 1, 2), w('b', 1, 2)])?.id, 'a');
});

test('pickLeastLoaded: never a full, draining or backed-up worker', () => {
  assert.equal(pickLeastLoaded([w('a', 4, 4)]), undefined);
  assert.equal(pickLeastLoaded([w('a', 0, 4, { ready: false })]), undefined);
  assert.equal(pickLeastLoaded([w('a', 0, 4, { writable: false }), w('b', 3, 4)])?.id, 'b');
});

test('pickLeastLoaded: pinning considers only that worker', () => {
  assert.equal(pickLeastLoaded([w('a', 0, 4), w('b', 3, 4)], 'b')?.id, 'b');
  assert.equal(pickLeastLoaded([w('a', 0, 4), w('b', 4, 4)], 'b'), undefined);
  assert.equal(pickLeastLoaded([w('a', 0, 4)], 'zzz'), undefined);
});

test('hasEligibleWorker: full workers count, draining ones do not', () => {
  assert.equal(hasEligibleWorker([w('a', 4, 4)]), true);
  assert.equal(hasEligibleWorker([w('a', 0, 4, { ready: false })]), false);
  assert.equal(hasEligibleWorker([w('a', 0, 4)], 'b'), false);
  assert.equal(hasEligibleWorker([]), false);
});
