// @ts-check
// Tiny DOM helpers. Data is only ever put in the page as text (never as HTML).

/**
 * Creates an element: h('td', { class: 'num', title: 'x' }, 'text', childNode, …).
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Sets text only when it changed (cheap for thousands of cells). @param {Element} el @param {string | number} text */
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

/**
 * The element of `id`; the page's ids are fixed, so a missing one is a bug, not a state.
 * @param {string} id
 * @returns {any}
 */
export function $(id) {
  return document.getElementById(id);
}
