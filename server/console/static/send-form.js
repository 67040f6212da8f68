// @ts-check
/** @import { Store } from './store.js' */
// "Send a test request": dispatched through the console socket with the admin's authority.
/** @import { ConsoleClientMessage, ConsoleServerMessage } from '../console-protocol.ts' */
/** @import { HttpRequest } from '../../../shared/protocol.ts' */
import { $, h, setText } from './dom.js';
import { whyLevel } from './format.js';
import { resultNode } from './details-view.js';
import { poolKey } from './store.js';

/** "Name: value" lines → header map (repeated names become lists). Throws on a bad line. */
/** @param {string} text @returns {Record<string, string | string[]>} */
export function parseHeaders(text) {
  /** @type {Record<string, string | string[]>} */
  const headers = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`header line ${i + 1}: expected "Name: value"`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new Error(`header line ${i + 1}: "${name}" is not a header name`);
    const prev = headers[name];
    headers[name] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
  }
  return headers;
}

export class SendForm {
  #form = $('send-form');
  #out = $('send-result');
  #why = $('send-why');
  #suites = $('suite-list');
  #poolsList = $('pool-list');
  /** @type {string | null} */
  #pending = null;
  /** @type {Store} */
  #store;
  /** @type {(m: ConsoleClientMessage) => boolean} */
  #send;

  /** @param {Store} store @param {(m: ConsoleClientMessage) => boolean} send */
  constructor(store, send) {
    this.#store = store;
    this.#send = send;
    this.#form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.#submit();
    });
    this.#form.addEventListener('input', () => this.renderWhy());
  }

  /** @param {Store} store */
  setStore(store) {
    this.#store = store;
  }

  /** Fills the suite/pool suggestions and the "why not?" of the chosen pool. */
  render() {
    const pools = [...this.#store.pools.values()];
    const suites = [...new Set(pools.map((p) => p.suite))];
    this.#suites.replaceChildren(...suites.map((s) => h('option', { value: s })));
    const suite = this.#form.elements.suite.value;
    this.#poolsList.replaceChildren(...pools.filter((p) => !suite || p.suite === suite).map((p) => h('option', { value: p.pool })));
    // Prefill with the first pool, so the form is one URL away from sending.
    if (!this.#form.elements.suite.value && pools.length > 0) {
      const first = pools.find((p) => !p.whyNot) ?? pools[0];
      this.#form.elements.suite.value = first.suite;
      this.#form.elements.pool.value = first.pool;
    }
    this.renderWhy();
  }

  renderWhy() {
    const f = this.#form.elements;
    if (!f.suite.value || !f.pool.value) {
      setText(this.#why, '–');
      delete this.#why.dataset.level;
      return;
    }
    const view = this.#store.pools.get(poolKey(f.suite.value, f.pool.value));
    const why = view ? view.whyNot : 'no workers';
    setText(this.#why, why ?? 'would run now');
    this.#why.dataset.level = whyLevel(why);
  }

  #submit() {
    const f = this.#form.elements;
    let headers;
    try {
      headers = parseHeaders(f.headers.value);
    } catch (err) {
      this.#out.replaceChildren(h('p', { class: 'error' }, /** @type {Error} */ (err).message));
      return;
    }
    /** @type {HttpRequest} */
    const request = { method: f.method.value, url: f.url.value.trim() };
    if (Object.keys(headers).length > 0) request.headers = headers;
    if (f.body.value !== '') request.body = f.body.value;
    const ref = `send-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    /** @type {Extract<ConsoleClientMessage, { type: 'dispatch' }>} */
    const message = { type: 'dispatch', ref, suite: f.suite.value.trim(), dispatch: { pool: f.pool.value.trim(), timeoutMs: Number(f.timeoutMs.value), request } };
    if (!this.#send(message)) {
      this.#out.replaceChildren(h('p', { class: 'error' }, 'Not connected.'));
      return;
    }
    this.#pending = ref;
    this.#out.replaceChildren(h('p', { class: 'muted' }, `Sent ${request.method} ${request.url} to ${message.suite}/${message.dispatch.pool}…`));
  }

  /** A `dispatch-result`; returns true when it answered this form. */
  /** @param {Extract<ConsoleServerMessage, { type: 'dispatch-result' }>} m */
  onResult(m) {
    if (m.ref !== this.#pending) return false;
    this.#pending = null;
    this.#out.replaceChildren(resultNode(m, 'Response'));
    return true;
  }

  /** The socket dropped: an answer to a request in flight will not come. */
  connectionLost() {
    if (!this.#pending) return;
    this.#pending = null;
    this.#out.replaceChildren(h('p', { class: 'error' }, 'The connection dropped before the answer; the request was cancelled.'));
  }
}
