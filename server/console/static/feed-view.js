// @ts-check
/** @import { Store } from './store.js' */
/** @import { JobRow } from '../console-protocol.ts' */
// The job feed: newest first, bounded, filtered by suite, pool and outcome. It holds
// still while the pointer is over it (or "pause" is ticked): at hundreds of jobs per
// second rows could not be read or clicked otherwise.
import { $, h, setText } from './dom.js';
import { fmtClock, fmtMs, shortId } from './format.js';

/** Rows on screen; the filters apply to every job the page keeps (feedSize). */
const MAX_ROWS = 200;

export class FeedView {
  #tbody = $('feed');
  #suite = $('f-suite');
  #pool = $('f-pool');
  #outcome = $('f-outcome');
  #count = $('feed-count');
  #wrap = /** @type {HTMLElement} */ (document.querySelector('.feed-wrap'));
  #pauseBox = $('f-pause');
  #hovering = false;
  /** New jobs arrived while paused. */
  #held = 0;
  /** Options already in the selects. */
  #known = { suite: new Set(), pool: new Set(), outcome: new Set(['ok', 'failed']) };
  /** job id → tr (rows on screen) */
  #rows = new Map();
  #selected = null;
  /** @type {Store} */
  #store;
  #onSelect;

  /** @param {Store} store @param {(id: string) => void} onSelect */
  constructor(store, onSelect) {
    this.#store = store;
    this.#onSelect = onSelect;
    for (const sel of [this.#suite, this.#pool, this.#outcome]) sel.addEventListener('change', () => this.render({ full: true, force: true }));
    this.#tbody.addEventListener('click', (ev) => this.#pick(ev.target.closest('tr')));
    this.#tbody.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') this.#pick(ev.target.closest('tr'));
    });
    const pauseChanged = () => {
      this.#wrap.classList.toggle('paused', this.#paused());
      if (!this.#paused()) this.render({ full: true, force: true });
    };
    this.#wrap.addEventListener('mouseenter', () => {
      this.#hovering = true;
      pauseChanged();
    });
    this.#wrap.addEventListener('mouseleave', () => {
      this.#hovering = false;
      pauseChanged();
    });
    this.#pauseBox.addEventListener('change', pauseChanged);
  }

  #paused() {
    return this.#hovering || this.#pauseBox.checked;
  }

  /** @param {Store} store */
  setStore(store) {
    this.#store = store;
  }

  /** @param {JobRow} row */
  #passes(row) {
    const suite = this.#suite.value;
    const pool = this.#pool.value;
    const outcome = this.#outcome.value;
    if (suite && row.suite !== suite) return false;
    if (pool && `${row.suite}/${row.pool}` !== pool) return false;
    if (outcome === 'ok' && row.outcome !== 'ok') return false;
    if (outcome === 'failed' && row.outcome === 'ok') return false;
    if (outcome && outcome !== 'ok' && outcome !== 'failed' && row.outcome !== outcome) return false;
    return true;
  }

  #learn(rows) {
    const add = (sel, set, value, label = value) => {
      if (set.has(value)) return;
      set.add(value);
      sel.append(h('option', { value }, label));
    };
    for (const r of rows) {
      add(this.#suite, this.#known.suite, r.suite);
      add(this.#pool, this.#known.pool, `${r.suite}/${r.pool}`);
      if (r.outcome !== 'ok') add(this.#outcome, this.#known.outcome, r.outcome);
    }
  }

  /** @param {JobRow} r */
  #row(r) {
    const failed = r.outcome !== 'ok';
    const statusClass = failed ? 'outcome' : (r.status ?? 0) >= 500 ? 'outcome s5xx' : (r.status ?? 0) >= 400 ? 'outcome s4xx' : 'outcome';
    const tr = h('tr', { class: failed ? 'fail' : null, tabindex: 0, dataset: { jobId: r.id, outcome: r.outcome } },
      h('td', { title: new Date(r.at).toISOString() }, fmtClock(r.at)),
      h('td', null, `${r.suite} / ${r.pool}`),
      h('td', { class: 'worker', title: `${r.workerId ?? 'never reached a worker'}${r.node ? ` · arrived at node ${r.node}` : ''}` }, shortId(r.workerId)),
      h('td', null, r.method),
      h('td', { class: 'url', title: r.url }, r.url),
      h('td', { class: statusClass }, failed ? r.outcome : r.status),
      h('td', { class: 'num' }, fmtMs(r.durationMs)));
    if (r.id === this.#selected) tr.classList.add('selected');
    this.#rows.set(r.id, tr);
    return tr;
  }

  render(changes) {
    const s = this.#store;
    if (changes.full) this.#learn(s.jobs);
    else this.#learn(changes.jobs);
    if (this.#paused() && !changes.force && this.#tbody.childElementCount > 0) {
      this.#held += changes.full ? 0 : changes.jobs.length;
      setText(this.#count, `paused · ${this.#held} new jobs not shown`);
      return;
    }
    this.#held = 0;
    if (changes.full) {
      this.#rows.clear();
      const rows = [];
      for (let i = s.jobs.length - 1; i >= 0 && rows.length < MAX_ROWS; i--) if (this.#passes(s.jobs[i])) rows.push(this.#row(s.jobs[i]));
      this.#tbody.replaceChildren(...rows);
    } else if (changes.jobs.length > 0) {
      const frag = document.createDocumentFragment();
      for (let i = changes.jobs.length - 1; i >= 0 && frag.childNodes.length < MAX_ROWS; i--) if (this.#passes(changes.jobs[i])) frag.append(this.#row(changes.jobs[i]));
      this.#tbody.prepend(frag);
      // Past MAX_ROWS, or gone from the page's bounded log: the oldest rows, at the bottom, leave.
      const alive = changes.dropped > 0 ? new Set(s.jobs.map((j) => j.id)) : null;
      for (let last = this.#tbody.lastElementChild; last && (this.#tbody.childElementCount > MAX_ROWS || (alive && !alive.has(last.dataset.jobId))); last = this.#tbody.lastElementChild) {
        this.#rows.delete(last.dataset.jobId);
        last.remove();
      }
    }
    let failed = 0;
    for (const j of s.jobs) if (j.outcome !== 'ok') failed += 1;
    setText(this.#count, `${this.#tbody.childElementCount} shown · last ${s.jobs.length} jobs, ${failed} failed`);
  }

  #pick(tr) {
    if (!tr || !tr.dataset.jobId) return;
    this.#rows.get(this.#selected)?.classList.remove('selected');
    this.#selected = tr.dataset.jobId;
    tr.classList.add('selected');
    this.#onSelect(this.#selected);
  }
}
