// @ts-check
// The console's socket: token in a subprotocol entry, heartbeat, reconnect with backoff.
// Messages are typed by server/console/console-protocol.ts itself (JSDoc imports, checked
// by `npm run typecheck`): a change there that the page does not follow fails the check.
/** @import { ConsoleClientMessage, ConsoleServerMessage } from '../console-protocol.ts' */
/** @typedef {'connecting' | 'live' | 'resyncing' | 'reconnecting' | 'refused' | 'stopped'} SocketStatus */

export const SUBPROTOCOL = 'flowtest.console.v1';
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;
const DEFAULT_HEARTBEAT_MS = 5_000;
/** A socket that brought no message for this many heartbeats is taken for dead. */
const DEAD_AFTER_BEATS = 2.5;

/** base64url of a UTF-8 string, without padding (a subprotocol must be an HTTP token). @param {string} text */
export function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The one place the page parses a server message. Only the shape's `type` is checked:
 * the server is trusted to send what its protocol types say.
 * @param {string} text
 * @returns {ConsoleServerMessage | null}
 */
export function decodeMessage(text) {
  try {
    const m = JSON.parse(text);
    return m && typeof m === 'object' && typeof m.type === 'string' ? m : null;
  } catch {
    return null;
  }
}

/**
 * Asks the server whether `token` is an admin token.
 * @param {string} token
 * @returns {Promise<'ok' | 'unknown' | 'not-admin' | 'unreachable'>}
 */
export async function checkToken(token) {
  try {
    const res = await fetch('/console/auth', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (res.status === 204) return 'ok';
    if (res.status === 401) return 'unknown';
    if (res.status === 403) return 'not-admin';
    return 'unreachable';
  } catch {
    return 'unreachable';
  }
}

/**
 * One live connection at a time. `onStatus(state, detail)` with state in
 * connecting | live | resyncing | reconnecting | refused | stopped.
 * Every timer and socket handler is owned here and released by #drop / stop().
 */
export class ConsoleSocket {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #heartbeatTimer = undefined; // owner: #startHeartbeat / #drop
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer = undefined; // owner: #scheduleRetry / stop
  #backoffMs = FIRST_BACKOFF_MS;
  #heartbeatMs = DEFAULT_HEARTBEAT_MS;
  #lastMessageAt = 0;
  #stopped = false;
  #failuresBeforeOpen = 0;

  /**
   * @param {object} options
   * @param {string} options.token
   * @param {(m: ConsoleServerMessage) => void} options.onMessage
   * @param {(state: SocketStatus, detail?: string) => void} options.onStatus
   */
  constructor({ token, onMessage, onStatus }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
  }

  start() {
    this.#connect();
  }

  /** Closes for good (sign out). */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#drop(1000, 'signed out');
    this.onStatus('stopped');
  }

  /** @param {ConsoleClientMessage} message @returns {boolean} sent */
  send(message) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  /** @param {number} ms */
  setHeartbeat(ms) {
    if (typeof ms === 'number' && ms > 0 && ms !== this.#heartbeatMs) {
      this.#heartbeatMs = ms;
      this.#startHeartbeat();
    }
  }

  #url() {
    return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/console`;
  }

  #connect() {
    if (this.#stopped) return;
    this.onStatus(this.#failuresBeforeOpen > 0 ? 'reconnecting' : 'connecting');
    let opened = false;
    const ws = new WebSocket(this.#url(), [SUBPROTOCOL, `token.${base64url(this.token)}`]);
    this.#ws = ws;
    ws.onopen = () => {
      opened = true;
      this.#failuresBeforeOpen = 0;
      this.#lastMessageAt = Date.now();
      this.#startHeartbeat();
    };
    ws.onmessage = (ev) => {
      this.#lastMessageAt = Date.now();
      const m = decodeMessage(ev.data);
      if (!m) return;
      if (m.type === 'snapshot') {
        this.#backoffMs = FIRST_BACKOFF_MS;
        this.onStatus('live');
      } else if (m.type === 'resync') this.onStatus('resyncing', m.reason);
      this.onMessage(m);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#drop();
      if (!opened) this.#failuresBeforeOpen += 1;
      this.#afterLoss(opened, ev.code, ev.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  /** Detaches and closes the current socket without waiting for its close handshake. */
  #drop(code = 4000, reason = 'heartbeat') {
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    const ws = this.#ws;
    this.#ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  }

  /** @param {boolean} opened @param {number} code @param {string} reason */
  async #afterLoss(opened, code, reason) {
    if (this.#stopped) return;
    let detail = code === 1001 ? 'server restarting' : reason || 'connection lost';
    // A refused handshake looks like any network failure to a page: ask the server why.
    if (!opened) {
      const verdict = await checkToken(this.token);
      if (this.#stopped) return;
      if (verdict === 'unknown' || verdict === 'not-admin') {
        this.#stopped = true;
        this.onStatus('refused', verdict === 'unknown' ? 'unknown token' : 'not an admin token');
        return;
      }
      if (verdict === 'unreachable') detail = 'server unreachable';
      else if (this.#failuresBeforeOpen >= 2) detail = 'the server refuses this page (is its origin allowed?)';
    }
    this.onStatus('reconnecting', detail);
    this.#scheduleRetry();
  }

  #scheduleRetry() {
    clearTimeout(this.#retryTimer);
    const delay = Math.random() * this.#backoffMs; // full jitter
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs * 2);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  #startHeartbeat() {
    clearInterval(this.#heartbeatTimer);
    if (!this.#ws) return;
    this.#heartbeatTimer = setInterval(() => {
      if (Date.now() - this.#lastMessageAt > this.#heartbeatMs * DEAD_AFTER_BEATS) {
        // Browsers never show ping frames: silence on our own heartbeat means a dead socket.
        this.#drop(4000, 'heartbeat');
        this.onStatus('reconnecting', 'no heartbeat');
        this.#scheduleRetry();
        return;
      }
      this.send({ type: 'ping', t: Date.now() });
    }, this.#heartbeatMs);
  }
}
