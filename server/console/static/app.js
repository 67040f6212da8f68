// @ts-check
// The console page: sign-in, one socket, a store, and views rendered once per frame.
/** @import { ConsoleClientMessage, ConsoleServerMessage } from '../console-protocol.ts' */
/** @import { Changes } from './store.js' */
import { ConsoleSocket, checkToken } from './console-socket.js';
import { DetailsView } from './details-view.js';
import { $, setText } from './dom.js';
import { FeedView } from './feed-view.js';
import { fmtRate } from './format.js';
import { SendForm } from './send-form.js';
import { applyDelta, applySnapshot, createStore } from './store.js';
import { WorkersView } from './workers-view.js';

const TOKEN_KEY = 'flowtest.console.token';
const STATUS_TEXT = {
  'signed-out': 'signed out', connecting: 'connecting…', live: 'live', resyncing: 'catching up…',
  reconnecting: 'reconnecting…', refused: 'refused', stopped: 'signed out',
};

let store = createStore();
/** @type {ConsoleSocket | null} */
let socket = null;
/** Bumped by every sign-in and sign-out: a token check that answers after a newer one is ignored. */
let signInAttempt = 0;
/** @param {ConsoleClientMessage} m */
const send = (m) => socket?.send(m) ?? false;
const workers = new WorkersView(store);
const feed = new FeedView(store, (id) => details.show(id));
const details = new DetailsView(send);
const form = new SendForm(store, send);

/** Measurements for people and tests (never the token). */
const stats = { snapshots: 0, deltas: 0, resyncs: 0, lastSnapshotRenderMs: 0, maxDeltaRenderMs: 0, totalDeltaRenderMs: 0 };
/** @type {any} */ (window).__flowtestConsole = { stats, workerCount: () => store.workers.size, jobCount: () => store.jobs.length };

// ---- rendering: changes are merged and drawn once per animation frame ----
/** @type {(Changes & { force?: boolean }) | null} */
let pending = null;
function merge(a, b) {
  if (!a) return b;
  if (a.full || b.full) return { full: true };
  for (const id of b.workers) a.workers.add(id);
  a.gone.push(...b.gone);
  a.pools ||= b.pools;
  a.jobs.push(...b.jobs);
  a.dropped += b.dropped;
  return a;
}
function schedule(changes) {
  const first = pending === null;
  pending = merge(pending, changes);
  if (first) requestAnimationFrame(draw);
}
function draw() {
  const changes = pending;
  pending = null;
  if (!changes) return;
  const t0 = performance.now();
  workers.render(changes);
  feed.render(changes);
  if (changes.full || changes.pools) form.render();
  renderCounters();
  const ms = performance.now() - t0;
  if (changes.full) stats.lastSnapshotRenderMs = ms;
  else {
    stats.maxDeltaRenderMs = Math.max(stats.maxDeltaRenderMs, ms);
    stats.totalDeltaRenderMs += ms;
  }
}

function renderCounters() {
  const c = store.counters;
  if (!c) return;
  setText($('c-workers'), c.workers);
  setText($('c-rate'), c.jobsPerSec.toFixed(1));
  setText($('c-errors'), fmtRate(c.errorRate));
  $('c-errors').classList.toggle('bad', (c.errorRate ?? 0) > 0);
  setText($('c-queued'), c.queued);
  $('c-queued').classList.toggle('bad', c.queued > 0);
  setText($('c-inflight'), c.inFlight);
}

/** Every server message, as the console protocol types it. @param {ConsoleServerMessage} m */
function onMessage(m) {
  switch (m.type) {
    case 'snapshot':
      stats.snapshots += 1;
      applySnapshot(store, m);
      socket?.setHeartbeat(m.heartbeatMs);
      schedule({ full: true });
      return;
    case 'delta':
      stats.deltas += 1;
      schedule(applyDelta(store, m));
      return;
    case 'resync':
      stats.resyncs += 1;
      return; // the server sends a snapshot once this page has caught up
    case 'job':
      details.onJob(m);
      return;
    case 'dispatch-result':
      if (!form.onResult(m)) details.onResult(m);
      return;
  }
}

function setStatus(state, detail) {
  const el = $('status');
  el.dataset.state = state;
  setText(el, detail ? `${STATUS_TEXT[state]} — ${detail}` : STATUS_TEXT[state]);
  if (state === 'reconnecting') {
    form.connectionLost();
    details.connectionLost();
  }
  if (state === 'refused') signOut(`Sign-in refused: ${detail}.`);
}

// ---- sign-in ----
function showSignIn(message) {
  $('main').hidden = true;
  $('counters').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  setText($('signin-error'), message ?? '');
  $('signin-token').value = '';
  $('signin-token').focus();
}

function signOut(message) {
  signInAttempt += 1;
  sessionStorage.removeItem(TOKEN_KEY);
  const s = socket;
  socket = null;
  s?.stop();
  store = createStore();
  for (const v of [workers, feed, form]) v.setStore(store);
  const el = $('status');
  el.dataset.state = message ? 'refused' : 'signed-out';
  setText(el, message ? 'refused' : 'signed out');
  showSignIn(message);
}

async function signIn(token) {
  const attempt = ++signInAttempt;
  setStatus('connecting');
  const verdict = await checkToken(token);
  // A second submit (or a sign-out) while this check ran supersedes it: only one socket, owned by `socket`.
  if (attempt !== signInAttempt) return;
  if (verdict === 'unknown' || verdict === 'not-admin') {
    signOut(`Sign-in refused: ${verdict === 'unknown' ? 'unknown token' : 'not an admin token'}.`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin').hidden = true;
  $('main').hidden = false;
  $('counters').hidden = false;
  $('sign-out').hidden = false;
  const s = new ConsoleSocket({ token, onMessage, onStatus: setStatus });
  socket = s;
  s.start();
}

/** `#token=…` signs in at once; the fragment is then removed from the address bar and history. */
function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}

$('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = $('signin-token').value.trim();
  if (token) void signIn(token);
});
$('sign-out').addEventListener('click', () => signOut());
setInterval(() => workers.tickAges(), 1000);

const initial = tokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);
if (initial) void signIn(initial);
else showSignIn();
