// What the page knows, rebuilt from each snapshot and moved forward by each delta.

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

export const poolKey = (suite, pool) => `${suite}/${pool}`;
const MAX_EVENTS = 12;

function event(store, text) {
  store.events.unshift({ at: Date.now() + store.clockOffsetMs, text });
  if (store.events.length > MAX_EVENTS) store.events.length = MAX_EVENTS;
}

/** Replaces everything; returns a change set that asks for a full render. */
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

/** Applies a delta; returns what changed. */
export function applyDelta(store, m) {
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
