// @ts-check
// What the page knows, rebuilt from each snapshot and moved forward by each delta.
// Typed by the server's console protocol (checked by `npm run typecheck`, no build step).
/** @import { ConsoleServerMessage, Counters, JobRow, PoolView } from '../console-protocol.ts' */
/** @import { WorkerInfo } from '../../../shared/protocol.ts' */

/** @typedef {Extract<ConsoleServerMessage, { type: 'snapshot' }>} SnapshotMessage */
/** @typedef {Extract<ConsoleServerMessage, { type: 'delta' }>} DeltaMessage */

/**
 * @typedef {object} Store
 * @property {Map<string, WorkerInfo>} workers id → worker
 * @property {Map<string, PoolView>} pools "suite/pool" → pool
 * @property {JobRow[]} jobs oldest first, at most feedSize
 * @property {number} lastSeq
 * @property {number} feedSize
 * @property {Counters | null} counters
 * @property {number} heartbeatMs
 * @property {number} clockOffsetMs serverTime − Date.now() at the last message, for ages
 * @property {{ at: number, text: string }[]} events recent worker arrivals and departures, newest first
 */

/** @typedef {{ full: true }} FullRender */
/**
 * @typedef {object} DeltaChanges
 * @property {false} full
 * @property {Set<string>} workers ids upserted
 * @property {WorkerInfo[]} gone
 * @property {boolean} pools
 * @property {JobRow[]} jobs new rows
 * @property {number} dropped rows dropped from the front of the feed
 */
/** @typedef {FullRender | DeltaChanges} Changes */

/** @returns {Store} */
export function createStore() {
  return {
    /** id → WorkerInfo */
    workers: new Map(),
    /** "suite/pool" → PoolView */
    pools: new Map(),
    /** JobRow[], oldest first, at most feedSize */
    jobs: [],
    lastSeq: 0,
    feedSize: 500,
    counters: null,
    heartbeatMs: 5000,
    /** serverTime − Date.now() at the last message, for ages. */
    clockOffsetMs: 0,
    /** Recent worker arrivals and departures, newest first. */
    events: [],
  };
}

/** @type {(suite: string, pool: string) => string} */
export const poolKey = (suite, pool) => `${suite}/${pool}`;
const MAX_EVENTS = 12;

/** @param {Store} store @param {string} text */
function event(store, text) {
  store.events.unshift({ at: Date.now() + store.clockOffsetMs, text });
  if (store.events.length > MAX_EVENTS) store.events.length = MAX_EVENTS;
}

/**
 * Replaces everything; returns a change set that asks for a full render.
 * @param {Store} store
 * @param {SnapshotMessage} m
 * @returns {FullRender}
 */
export function applySnapshot(store, m) {
  store.workers = new Map(m.workers.map((w) => [w.id, w]));
  store.pools = new Map(m.pools.map((p) => [poolKey(p.suite, p.pool), p]));
  store.feedSize = m.feedSize;
  store.jobs = m.jobs.slice(-m.feedSize);
  store.lastSeq = m.lastSeq;
  store.counters = m.counters;
  store.heartbeatMs = m.heartbeatMs;
  store.clockOffsetMs = m.serverTime - Date.now();
  return { full: true };
}

/**
 * Applies a delta; returns what changed.
 * @param {Store} store
 * @param {DeltaMessage} m
 * @returns {DeltaChanges}
 */
export function applyDelta(store, m) {
  /** @type {DeltaChanges} */
  const changes = { full: false, workers: new Set(), gone: [], pools: false, jobs: [], dropped: 0 };
  store.clockOffsetMs = m.serverTime - Date.now();
  for (const w of m.workers) {
    if (!store.workers.has(w.id)) event(store, `worker ${w.id.slice(0, 8)} joined ${w.suite}/${w.name} from ${(w.remoteAddress ?? '?').replace(/^::ffff:/, '')}`);
    store.workers.set(w.id, w);
    changes.workers.add(w.id);
  }
  for (const g of m.gone) {
    const w = store.workers.get(g.id);
    if (!w) continue;
    store.workers.delete(g.id);
    changes.gone.push(w);
    event(store, `worker ${g.id.slice(0, 8)} left ${g.suite}/${g.pool}: ${g.reason}`);
  }
  if (m.pools) {
    store.pools = new Map(m.pools.map((p) => [poolKey(p.suite, p.pool), p]));
    changes.pools = true;
  }
  for (const row of m.jobs) {
    if (row.seq <= store.lastSeq) continue; // already in the snapshot
    store.lastSeq = row.seq;
    store.jobs.push(row);
    changes.jobs.push(row);
  }
  const extra = store.jobs.length - store.feedSize;
  if (extra > 0) {
    changes.dropped = extra;
    store.jobs.splice(0, extra);
  }
  store.counters = m.counters;
  return changes;
}
