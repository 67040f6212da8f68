// @ts-check
/** @import { Store } from './store.js' */
/** @import { WorkerInfo } from '../../../shared/protocol.ts' */
// Workers grouped by suite and pool, with the "why not?" of each pool.
import { $, h, setText } from './dom.js';
import { fmtAddress, fmtAge, fmtMs, shortId, whyLevel } from './format.js';
import { poolKey } from './store.js';

/** Pools with more workers than this start collapsed (the page stays usable with thousands). */
const COLLAPSE_OVER = 40;

export class WorkersView {
  #root = $('pools');
  #events = $('worker-events');
  #filter = $('worker-filter');
  /** "suite/pool" → { el, summary parts, tbody } */
  #pools = new Map();
  /** suite → section element */
  #suites = new Map();
  /** worker id → { tr, cells } */
  #rows = new Map();
  /** @type {Store} */
  #store;

  /** @param {Store} store */
  constructor(store) {
    this.#store = store;
    this.#filter.addEventListener('input', () => this.#applyFilter());
  }

  /** @param {Store} store */
  setStore(store) {
    this.#store = store;
  }

  render(changes) {
    const s = this.#store;
    if (changes.full) {
      this.#rows.clear();
      this.#pools.clear();
      this.#suites.clear();
      this.#root.replaceChildren();
      for (const w of s.workers.values()) this.#upsert(w);
    } else {
      for (const w of changes.gone) this.#remove(w);
      for (const id of changes.workers) {
        const w = s.workers.get(id);
        if (w) this.#upsert(w);
      }
    }
    for (const p of s.pools.values()) this.#pool(p.suite, p.pool);
    for (const [key, pool] of this.#pools) this.#updatePoolHead(key, pool);
    this.#order();
    if (this.#pools.size === 0 && !this.#root.querySelector('.empty')) {
      this.#root.append(h('p', { class: 'empty' }, 'No pools yet. Start an agent: ', h('code', null, 'flowtest agent --server … --suite S --name P')));
    }
    this.#renderEvents();
    if (this.#filter.value) this.#applyFilter();
  }

  /** Refreshes ages ("3 s ago"); cheap enough for thousands of rows. */
  tickAges() {
    const now = Date.now() + this.#store.clockOffsetMs;
    for (const [id, r] of this.#rows) {
      const w = this.#store.workers.get(id);
      if (!w) continue;
      setText(r.pong, w.lastPongAt ? fmtAge(now - Date.parse(w.lastPongAt)) : 'never');
      setText(r.since, fmtAge(now - Date.parse(w.connectedAt)));
    }
  }

  #pool(suite, pool) {
    const key = poolKey(suite, pool);
    let p = this.#pools.get(key);
    if (p) return p;
    this.#root.querySelector(':scope > .empty')?.remove();
    let section = this.#suites.get(suite);
    if (!section) {
      section = h('section', { class: 'suite', dataset: { suite } }, h('h3', null, `suite ${suite}`));
      this.#suites.set(suite, section);
    }
    const name = h('span', { class: 'pool-name' }, pool);
    const stats = h('span', { class: 'pool-stats' });
    const why = h('span', { class: 'why' });
    const tbody = h('tbody');
    const table = h('table', null,
      h('thead', null, h('tr', null, ...['Worker', 'State', 'In flight', 'RTT', 'Last pong', 'Connected', 'Version', 'Address'].map((t) => h('th', null, t)))),
      tbody);
    const el = h('details', { class: 'pool', open: true, dataset: { pool: key } }, h('summary', null, name, stats, why), h('div', { class: 'table-wrap' }, table));
    p = { el, stats, why, tbody, suite, pool, userToggled: false, autoCollapsed: false };
    el.addEventListener('toggle', () => {
      if (!p.settingOpen) p.userToggled = true;
    });
    this.#pools.set(key, p);
    return p;
  }

  /** @param {WorkerInfo} w */
  #upsert(w) {
    const r = this.#rows.get(w.id) ?? this.#newRow(w);
    const full = w.inFlight >= w.concurrency;
    setText(r.state, w.state);
    r.state.className = `badge ${w.state}`;
    setText(r.load, `${w.inFlight} / ${w.concurrency}`);
    r.barFill.style.width = `${Math.min(100, (100 * w.inFlight) / w.concurrency)}%`;
    r.bar.className = full ? 'bar full' : 'bar';
    setText(r.rtt, fmtMs(w.rttMs));
    const now = Date.now() + this.#store.clockOffsetMs;
    setText(r.pong, w.lastPongAt ? fmtAge(now - Date.parse(w.lastPongAt)) : 'never');
    setText(r.since, fmtAge(now - Date.parse(w.connectedAt)));
  }

  /** @param {WorkerInfo} w */
  #newRow(w) {
    const pool = this.#pool(w.suite, w.name);
    const cell = (cls, text) => h('td', cls ? { class: cls } : null, text ?? '');
    const state = h('span', { class: 'badge' });
    const load = h('span');
    const barFill = h('i');
    const bar = h('span', { class: 'bar' }, barFill);
    /** @type {Record<string, any>} */
    const r = {
      state, load, bar, barFill,
      rtt: cell('num'), pong: cell(), since: cell(),
    };
    r.since.title = new Date(w.connectedAt).toLocaleString();
    r.tr = h('tr', { dataset: { workerId: w.id } },
      h('td', { class: 'id', title: w.node ? `${w.id} on node ${w.node}` : w.id }, shortId(w.id), w.node ? h('span', { class: 'node muted' }, ` @${w.node}`) : null),
      h('td', null, state),
      h('td', null, h('span', { class: 'load' }, load, bar)),
      r.rtt, r.pong, r.since,
      cell(null, w.agentVersion ?? '–'),
      cell('mono', fmtAddress(w.remoteAddress)));
    r.search = `${w.id} ${w.agentVersion ?? ''} ${fmtAddress(w.remoteAddress)} ${w.node ?? ''}`.toLowerCase();
    pool.tbody.append(r.tr);
    this.#rows.set(w.id, r);
    return r;
  }

  /** @param {WorkerInfo} w */
  #remove(w) {
    const r = this.#rows.get(w.id);
    if (!r) return;
    r.tr.remove();
    this.#rows.delete(w.id);
  }

  #updatePoolHead(key, p) {
    const view = this.#store.pools.get(key) ?? { ready: 0, draining: 0, freeSlots: 0, queued: 0, whyNot: 'no workers' };
    const n = p.tbody.childElementCount;
    setText(p.stats, `${view.ready} ready · ${view.draining} draining · ${view.freeSlots} free slots · ${view.queued} queued`);
    setText(p.why, view.whyNot ? `why not? ${view.whyNot}` : 'would run now');
    p.why.dataset.level = whyLevel(view.whyNot);
    // Big pools start collapsed; the person's own toggle wins.
    if (!p.userToggled) {
      const open = n <= COLLAPSE_OVER;
      if (p.el.open !== open) {
        p.settingOpen = true;
        p.el.open = open;
        queueMicrotask(() => (p.settingOpen = false));
      }
    }
  }

  /** Suites, then pools, in name order (moves nodes only when out of place). */
  #order() {
    const suites = [...this.#suites.keys()].sort();
    /** @type {Element | null} */
    let prev = null;
    for (const suite of suites) {
      const section = this.#suites.get(suite);
      const want = prev ? prev.nextSibling : this.#root.firstChild;
      if (section !== want) this.#root.insertBefore(section, want);
      prev = section;
      const pools = [...this.#pools.values()].filter((p) => p.suite === suite).sort((a, b) => a.pool.localeCompare(b.pool));
      let after = section.firstChild; // the h3
      for (const p of pools) {
        if (after.nextSibling !== p.el) section.insertBefore(p.el, after.nextSibling);
        after = p.el;
      }
    }
  }

  #applyFilter() {
    const q = this.#filter.value.trim().toLowerCase();
    for (const r of this.#rows.values()) r.tr.hidden = q !== '' && !r.search.includes(q);
  }

  #renderEvents() {
    const items = this.#store.events.map((e) => h('li', null, `${new Date(e.at).toLocaleTimeString()} — ${e.text}`));
    this.#events.replaceChildren(...items);
  }
}
