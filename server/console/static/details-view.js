// @ts-check
// One job in full (as the server masked it) and its Replay; also renders test-request results.
/** @import { ConsoleServerMessage } from '../console-protocol.ts' */
/** @typedef {Extract<ConsoleServerMessage, { type: 'dispatch-result' }>} DispatchResultMessage */
import { $, h } from './dom.js';
import { bodyNode, fmtClock, fmtMs, headersNode } from './format.js';

/**
 * A dispatch-result message as a block: status, worker, duration, headers, body — or the error code.
 * @param {DispatchResultMessage} m
 * @param {string} label
 */
export function resultNode(m, label) {
  if (!m.ok) {
    return h('div', { class: 'result-block', dataset: { outcome: m.error.code } },
      h('p', null, h('span', { class: 'bad' }, `${label} failed: `), h('span', { class: 'code' }, m.error.code), ` — ${m.error.message}`));
  }
  const r = m.result;
  return h('div', { class: 'result-block', dataset: { outcome: 'ok', status: r.response.status } },
    h('p', null, h('span', { class: 'ok' }, `${label}: HTTP ${r.response.status}`), ` in ${fmtMs(r.durationMs)} · worker `, h('code', null, r.workerId), ' · job ', h('code', null, r.id)),
    h('h3', null, 'Response headers'), headersNode(r.response.headers),
    h('h3', null, 'Response body'), bodyNode(r.response.body));
}

export class DetailsView {
  #root = $('details');
  /** @type {string | null} */
  #current = null;
  /** The Replay awaiting its dispatch-result: { ref, out }. */
  /** @type {{ ref: string, out: HTMLElement } | null} */
  #pendingReplay = null;
  #send;

  /** `send(message)` sends on the console socket and returns false when it is down. */
  constructor(send) {
    this.#send = send;
  }

  /** Asks the server for a job's details. */
  show(id) {
    this.#current = id;
    if (!this.#send({ type: 'job', id })) this.#root.replaceChildren(h('p', { class: 'error' }, 'Not connected.'));
    else this.#root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  }

  /** A `job` message from the server. @param {Extract<ConsoleServerMessage, { type: 'job' }>} m */
  onJob(m) {
    if (m.id !== this.#current) return;
    if (!m.job) {
      this.#root.replaceChildren(h('p', { class: 'muted' }, `Job ${m.id} is no longer kept by the server.`));
      return;
    }
    const j = m.job;
    const failed = j.outcome !== 'ok';
    const replayOut = h('div', { class: 'result', id: 'replay-result' });
    const replay = failed
      ? h('button', {
          type: 'button', id: 'replay', class: 'secondary', disabled: !j.replayable,
          title: j.replayable ? `re-send this request to ${j.suite}/${j.pool}` : 'the original request is no longer kept (or was too large)',
          onclick: () => {
            const ref = `replay-${j.id}-${Date.now()}`;
            this.#pendingReplay = { ref, out: replayOut };
            replayOut.replaceChildren(h('p', { class: 'muted' }, 'Replaying…'));
            if (!this.#send({ type: 'replay', ref, id: j.id })) replayOut.replaceChildren(h('p', { class: 'error' }, 'Not connected.'));
          },
        }, 'Replay')
      : null;
    this.#root.replaceChildren(h('div', { class: 'details', dataset: { jobId: j.id } },
      h('div', { class: 'headline' },
        failed ? h('span', { class: 'code' }, j.outcome) : h('span', { class: 'ok' }, `HTTP ${j.status}`),
        h('span', { class: 'muted' }, `${fmtClock(j.at)} · ${j.suite} / ${j.pool} · ${fmtMs(j.durationMs)}`),
        replay),
      j.error ? h('p', { class: 'error' }, j.error.message) : null,
      h('p', { class: 'muted' }, 'worker ', h('code', null, j.workerId ?? 'none (never sent)'), ' · job ', h('code', null, j.id)),
      replayOut,
      h('h3', null, 'Request'),
      h('p', { class: 'reqline' }, `${j.request.method} ${j.request.url}`),
      headersNode(j.request.headers),
      j.request.body ? bodyNode(j.request.body) : null,
      h('h3', null, 'Response'),
      j.response
        ? h('div', null, h('p', null, `HTTP ${j.response.status}`), headersNode(j.response.headers), bodyNode(j.response.body))
        : h('p', { class: 'muted' }, '(no response)')));
  }

  /** A `dispatch-result` for a replay; returns true when it was one. */
  /** @param {DispatchResultMessage} m */
  onResult(m) {
    if (!this.#pendingReplay || this.#pendingReplay.ref !== m.ref) return false;
    this.#pendingReplay.out.replaceChildren(resultNode(m, 'Replay'));
    this.#pendingReplay = null;
    return true;
  }

  /** The socket dropped: the server cancelled the replay, so its answer will not come. */
  connectionLost() {
    if (!this.#pendingReplay) return;
    this.#pendingReplay.out.replaceChildren(h('p', { class: 'error' }, 'The connection dropped before the answer; the replay was cancelled.'));
    this.#pendingReplay = null;
  }
}
