// @ts-check
// Formatting for people: durations, ages, sizes, clock times, body previews.
/** @import { BodyPreview, MaskedHeaders } from '../console-protocol.ts' */
import { h } from './dom.js';

/** @param {number | null | undefined} ms */

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** @param {number} ms */
export function fmtAge(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** @param {number} n */
export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** @param {number} epochMs */
export function fmtClock(epochMs) {
  const d = new Date(epochMs);
  /** @type {(n: number, w?: number) => string} */
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** @param {number | null | undefined} r a share, 0..1 */
export function fmtRate(r) {
  return r === null || r === undefined ? '–' : `${(r * 100).toFixed(r > 0 && r < 0.01 ? 1 : 0)}%`;
}

/** @param {string | null | undefined} id */
export function shortId(id) {
  return id ? id.slice(0, 8) : '–';
}

/** `::ffff:10.0.0.5` → `10.0.0.5`. @param {string | null | undefined} a */
export function fmtAddress(a) {
  return a ? a.replace(/^::ffff:/, '') : '–';
}

/** A BodyPreview as a <pre> (JSON pretty-printed when whole) or a size line for binary. @param {BodyPreview | null | undefined} preview */
export function bodyNode(preview) {
  if (!preview) return h('p', { class: 'muted' }, '(no body)');
  if (preview.kind === 'binary') return h('p', { class: 'muted' }, `binary body, ${fmtBytes(preview.bytes)} (not shown)`);
  if (preview.bytes === 0) return h('p', { class: 'muted' }, '(empty body)');
  let text = preview.text ?? '';
  if (preview.kind === 'json' && !preview.truncated) {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Not JSON after all: shown as it came.
    }
  }
  const note = preview.truncated ? h('p', { class: 'muted' }, `showing the start of ${fmtBytes(preview.bytes)}`) : null;
  return h('div', null, h('pre', { class: 'body' }, text), note);
}

/** A header map as a two-column table; masked values are shown as such. @param {MaskedHeaders | null | undefined} headers */
export function headersNode(headers) {
  const map = headers ?? {};
  const names = Object.keys(map);
  if (names.length === 0) return h('p', { class: 'muted' }, '(no headers)');
  const rows = names.map((name) => {
    const v = map[name];
    const value = Array.isArray(v) ? v.join('\n') : v;
    return h('tr', null, h('td', null, name), h('td', value === '[masked]' ? { class: 'masked' } : null, value === '[masked]' ? 'masked' : value));
  });
  return h('table', { class: 'headers' }, h('tbody', null, ...rows));
}

/** Reason line → level for the "why not?" badge. @param {string | null} whyNot @returns {'ok' | 'warn' | 'bad'} */
export function whyLevel(whyNot) {
  if (!whyNot) return 'ok';
  return whyNot.startsWith('all full') ? 'warn' : 'bad';
}
