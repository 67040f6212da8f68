import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalRouter } from '../../server/local-router.ts';
import { createLogger } from '../../server/logger.ts';
import { CONSOLE_PATH, CONSOLE_SUBPROTOCOL } from '../../server/console/console-protocol.ts';
import { FakeAgent, handshakeStatus } from '../helpers/fake-agent.ts';
import { dispatch, startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';
import { ConsoleClient, consoleProtocols, startRig, workerInfo } from './console-harness.ts';

test('an admin token opens the console: only flowtest.console.v1 is selected, and a snapshot comes first', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  assert.equal(c.ws.protocol, CONSOLE_SUBPROTOCOL);
  const first = await c.next('snapshot');
  assert.equal(c.messages[0], first);
  assert.deepEqual(first.workers, []);
  assert.equal(first.counters.workers, 0);
  assert.ok(first.heartbeatMs > 0);
  // The token is in no log line, in no form.
  const b64 = Buffer.from(TOKENS.admin).toString('base64url');
  assert.ok(!s.logLines.some((l) => l.includes(TOKENS.admin) || l.includes(b64)));
});

test('worker, client, unknown and missing tokens are refused at the handshake with no socket', async (t) => {
  const s = await startTestServer(t);
  const url = `${s.wsUrl}${CONSOLE_PATH}`;
  assert.equal(await handshakeStatus(url, consoleProtocols(TOKENS.worker), {}), 403, 'worker token');
  assert.equal(await handshakeStatus(url, consoleProtocols(TOKENS.client), {}), 403, 'client token');
  assert.equal(await handshakeStatus(url, consoleProtocols('not-a-known-token'), {}), 401, 'unknown token');
  assert.equal(await handshakeStatus(url, [CONSOLE_SUBPROTOCOL], {}), 401, 'no token');
  assert.equal(await handshakeStatus(url, [CONSOLE_SUBPROTOCOL, 'token.!!'], {}), 401, 'not base64url');
  assert.equal(await handshakeStatus(url, undefined, { authorization: `Bearer ${TOKENS.admin}` }), 400, 'no console subprotocol');
  assert.equal(s.console.openConsoles, 0);
});

test('Origin: own and listed origins pass; a foreign origin and null are refused; no Origin is judged by the token', async (t) => {
  const s = await startTestServer(t, { consoleOrigin: ['http://dash.example:3000'] });
  const url = `${s.wsUrl}${CONSOLE_PATH}`;
  const admin = consoleProtocols(TOKENS.admin);
  assert.equal(await handshakeStatus(url, admin, { origin: 'http://evil.example' }), 403, 'foreign');
  assert.equal(await handshakeStatus(url, admin, { origin: 'null' }), 403, 'null');
  assert.equal(await handshakeStatus(url, admin, { origin: s.url.replace('127.0.0.1', 'localhost') }), 403, 'same port, other host');
  assert.equal(await handshakeStatus(url, admin, { origin: `http://127.0.0.1:${s.port + 1}` }), 403, 'other port');
  assert.equal(await handshakeStatus(url, admin, { origin: `https://127.0.0.1:${s.port}` }), 403, 'other scheme');
  // A foreign origin is refused whatever the token, before the token is looked at.
  assert.equal(await handshakeStatus(url, consoleProtocols('wrong-token-value'), { origin: 'http://evil.example' }), 403);

  const own = await ConsoleClient.connect(t, s.wsUrl, { origin: s.url });
  await own.next('snapshot');
  const listed = await ConsoleClient.connect(t, s.wsUrl, { origin: 'http://DASH.example:3000' });
  await listed.next('snapshot');
  const noOrigin = await ConsoleClient.connect(t, s.wsUrl);
  await noOrigin.next('snapshot');
  assert.equal(await handshakeStatus(url, consoleProtocols(TOKENS.client), {}), 403, 'no origin, client token');
});

test('snapshot, then deltas: a worker appears, its jobs end in the feed, it leaves and its pool says "no workers"', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  const agent = await FakeAgent.connect(t, s.wsUrl, { name: 'pool1', concurrency: 2 });
  const up = await c.next('delta', (d) => d.workers.some((w) => w.id === agent.welcome.workerId));
  const w = up.workers.find((x) => x.id === agent.welcome.workerId)!;
  assert.deepEqual({ suite: w.suite, name: w.name, state: w.state, concurrency: w.concurrency }, { suite: 'acme', name: 'pool1', state: 'ready', concurrency: 2 });
  assert.equal(up.counters.workers, 1);

  const pending = dispatch(s, 'acme', { pool: 'pool1', request: { method: 'GET', url: 'http://target.internal/a' } });
  const job = await agent.nextJob();
  await c.next('delta', (d) => d.workers.some((x) => x.id === w.id && x.inFlight === 1));
  agent.reply(job.id, 201, 'made');
  assert.equal((await pending).status, 200);
  const ended = await c.next('delta', (d) => d.jobs.some((j) => j.id === job.id));
  const row = ended.jobs.find((j) => j.id === job.id)!;
  assert.deepEqual({ outcome: row.outcome, status: row.status, method: row.method, url: row.url, workerId: row.workerId }, { outcome: 'ok', status: 201, method: 'GET', url: 'http://target.internal/a', workerId: w.id });

  const t0 = Date.now();
  agent.ws.close();
  const gone = await c.next('delta', (d) => d.gone.some((g) => g.id === w.id));
  assert.equal(gone.counters.workers, 0);
  const pools = gone.pools ?? (await c.next('delta', (d) => d.pools !== undefined)).pools!;
  assert.equal(pools.find((p) => p.pool === 'pool1')?.whyNot, 'no workers');

  // A console opened now still sees the job that ended before it came.
  const late = await ConsoleClient.connect(t, s.wsUrl);
  const snap = await late.next('snapshot');
  assert.ok(snap.jobs.some((j) => j.id === job.id));
  assert.equal(snap.lastSeq, row.seq);
});

test('job details mask authorization, cookie, set-cookie and proxy-authorization; the console never receives them', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  const agent = await FakeAgent.connect(t, s.wsUrl);
  const secrets = ['Bearer sekrit-auth-1', 'session=sekrit-cookie-2', 'Basic sekrit-proxy-3', 'sid=sekrit-set-cookie-4'];
  const pending = dispatch(s, 'acme', {
    pool: 'pool1',
    request: {
      method: 'POST', url: 'http://target.internal/login', body: '{"user":"ann"}',
      headers: { Authorization: secrets[0], cookie: secrets[1], 'Proxy-Authorization': secrets[2], 'content-type': 'application/json', 'x-trace': 'keep-me' },
    },
  });
  const job = await agent.nextJob();
  assert.equal(job.request.headers?.Authorization, secrets[0], 'the worker itself gets the real header');
  agent.send({ type: 'result', id: job.id, response: { status: 200, headers: { 'Set-Cookie': [secrets[3]], 'content-type': 'application/json' }, body: '{"ok":true}', bodyEncoding: 'utf8' } });
  await pending;
  await c.next('delta', (d) => d.jobs.some((j) => j.id === job.id));
  c.send({ type: 'job', id: job.id });
  const { job: d } = await c.next('job', (m) => m.id === job.id);
  assert.ok(d);
  assert.deepEqual(d.request.headers, { Authorization: '[masked]', cookie: '[masked]', 'Proxy-Authorization': '[masked]', 'content-type': 'application/json', 'x-trace': 'keep-me' });
  assert.deepEqual(d.response?.headers, { 'Set-Cookie': '[masked]', 'content-type': 'application/json' });
  assert.deepEqual(d.request.body, { kind: 'json', bytes: 14, text: '{"user":"ann"}', truncated: false });
  assert.deepEqual(d.response?.body, { kind: 'json', bytes: 11, text: '{"ok":true}', truncated: false });
  for (const secret of secrets) assert.ok(!c.raw.some((text) => text.includes(secret.split(/[ =]/)[1])), `${secret} reached the console`);
});

test('bodies are previewed: binary by size, long text cut', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  const agent = await FakeAgent.connect(t, s.wsUrl);
  const pending = dispatch(s, 'acme', { pool: 'pool1', request: { method: 'PUT', url: 'http://t.internal/', body: 'x'.repeat(20_000) } });
  const job = await agent.nextJob();
  agent.send({ type: 'result', id: job.id, response: { status: 200, headers: { 'content-type': 'image/png' }, body: Buffer.alloc(1000, 7).toString('base64'), bodyEncoding: 'base64' } });
  await pending;
  await c.next('delta', (d) => d.jobs.some((j) => j.id === job.id));
  c.send({ type: 'job', id: job.id });
  const { job: d } = await c.next('job');
  assert.deepEqual(d?.response?.body, { kind: 'binary', bytes: 1000, truncated: false });
  assert.equal(d?.request.body?.bytes, 20_000);
  assert.equal(d?.request.body?.truncated, true);
  assert.equal(d?.request.body?.text?.length, 8 * 1024);
});

test('a test request and a replay go through the router with the admin authority; the replay re-sends the original request', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  const agent = await FakeAgent.connect(t, s.wsUrl, { suite: 'other', token: TOKENS.otherWorker, name: 'p' });

  c.send({ type: 'dispatch', ref: 'r1', suite: 'other', dispatch: { pool: 'p', timeoutMs: 5000, request: { method: 'GET', url: 'http://svc.internal/health' } } });
  const j1 = await agent.nextJob();
  agent.send({ type: 'result', id: j1.id, response: { status: 200, headers: { 'set-cookie': 'a=sekrit-from-target' }, body: 'healthy', bodyEncoding: 'utf8' } });
  const r1 = await c.next('dispatch-result', (m) => m.ref === 'r1');
  assert.ok(r1.ok);
  assert.equal(r1.result.response.status, 200);
  assert.deepEqual(r1.result.response.headers, { 'set-cookie': '[masked]' });
  assert.deepEqual(r1.result.response.body, { kind: 'text', bytes: 7, text: 'healthy', truncated: false });

  // A failed job, then its replay: the worker gets the original Authorization header.
  const failing = dispatch(s, 'other', { pool: 'p', request: { method: 'DELETE', url: 'http://svc.internal/x', headers: { authorization: 'Bearer orig-secret' } } }, { token: TOKENS.otherClient });
  const j2 = await agent.nextJob();
  agent.send({ type: 'result', id: j2.id, error: { code: 'target_unreachable', message: 'ECONNREFUSED' } });
  assert.equal((await failing).body.error.code, 'target_unreachable');
  const feed = await c.next('delta', (d) => d.jobs.some((j) => j.id === j2.id));
  const row = feed.jobs.find((j) => j.id === j2.id)!;
  assert.equal(row.outcome, 'target_unreachable');
  assert.equal(row.replayable, true);
  c.send({ type: 'replay', ref: 'r2', id: j2.id });
  const j3 = await agent.nextJob();
  assert.deepEqual(j3.request, { method: 'DELETE', url: 'http://svc.internal/x', headers: { authorization: 'Bearer orig-secret' } });
  agent.reply(j3.id, 204, '');
  const r2 = await c.next('dispatch-result', (m) => m.ref === 'r2');
  assert.ok(r2.ok && r2.result.response.status === 204);
  assert.ok(!c.raw.some((text) => text.includes('orig-secret') || text.includes('sekrit-from-target')));

  // Nothing to replay, and a pool without workers.
  c.send({ type: 'replay', ref: 'r3', id: 'no-such-job' });
  const r3 = await c.next('dispatch-result', (m) => m.ref === 'r3');
  assert.ok(!r3.ok && r3.error.code === 'invalid_request');
  c.send({ type: 'dispatch', ref: 'r4', suite: 'acme', dispatch: { pool: 'ghost', request: { method: 'GET', url: 'http://x.internal/' } } });
  const r4 = await c.next('dispatch-result', (m) => m.ref === 'r4');
  assert.ok(!r4.ok && r4.error.code === 'no_worker');
  const withGhost = await c.next('delta', (d) => d.pools?.some((p) => p.pool === 'ghost') ?? false);
  assert.equal(withGhost.pools!.find((p) => p.pool === 'ghost')!.whyNot, 'no workers');
});

test('a test request over --max-payload-bytes is refused with payload_too_large and the console stays open', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: 4096 });
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  c.send({ type: 'dispatch', ref: 'big', suite: 'acme', dispatch: { pool: 'p', request: { method: 'POST', url: 'http://x.internal/', body: 'b'.repeat(5000) } } });
  const r = await c.next('dispatch-result', (m) => m.ref === 'big');
  assert.ok(!r.ok && r.error.code === 'payload_too_large');
  c.send({ type: 'ping', t: 1 });
  await c.next('pong');
  assert.equal(s.router.stats().pending, 0);
});

test('closing a console cancels its test request in flight', async (t) => {
  const s = await startTestServer(t);
  const c = await ConsoleClient.connect(t, s.wsUrl);
  await c.next('snapshot');
  const agent = await FakeAgent.connect(t, s.wsUrl);
  c.send({ type: 'dispatch', ref: 'r1', suite: 'acme', dispatch: { pool: 'pool1', request: { method: 'GET', url: 'http://slow.internal/' } } });
  const job = await agent.nextJob();
  c.ws.close();
  const cancel = await agent.next('cancel');
  assert.equal(cancel.id, job.id);
  await waitUntil(() => s.router.stats().pending === 0 && s.console.openConsoles === 0, 2000, 'job and console gone');
});

test('ping → pong; a bad message closes with 1008; a silent console is cut after idleTimeoutMs', async (t) => {
  const rig = await startRig(t, { idleTimeoutMs: 300 });
  const c = await ConsoleClient.connect(t, rig.wsUrl);
  await c.next('snapshot');
  c.send({ type: 'ping', t: 42 });
  assert.equal((await c.next('pong')).t, 42);
  const silentSince = Date.now();
  const { code } = await within(c.closed, 5000, 'the server to cut the silent console');
  assert.equal(code, 1006, 'terminated, no close frame');
  assert.ok(Date.now() - silentSince >= 250);
  assert.equal(rig.gateway.openConsoles, 0);

  const bad = await ConsoleClient.connect(t, rig.wsUrl);
  bad.ws.send('{"type":"hello"}');
  const closed = await within(bad.closed, 5000, 'the server to close the console that sent a bad message');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /bad message/);
});

test('a console that stops reading gets no deltas and a resync notice, stays bounded, and gets a fresh snapshot once it reads again', async (t) => {
  const highWaterBytes = 256 * 1024;
  const rig = await startRig(t, { tickMs: 10, highWaterBytes, lowWaterBytes: 64 * 1024, feedSize: 200 });
  const c = await ConsoleClient.connect(t, rig.wsUrl);
  await c.next('snapshot');
  const socket = (c.ws as unknown as { _socket: import('node:net').Socket })._socket;
  socket.pause(); // the browser stops reading: kernel buffers fill, then ws's own

  let n = 0;
  let maxBuffered = 0;
  const longUrl = `http://t.internal/${'p'.repeat(2000)}`;
  const burst = () => {
    for (let i = 0; i < 200; i++) {
      n += 1;
      rig.router.emit({
        kind: 'job-end',
        job: { id: `job-${n}`, suite: 'acme', pool: 'pool1', workerId: null, acceptedAt: Date.now(), durationMs: 1, outcome: 'no_worker', request: { method: 'GET', url: longUrl }, response: null, error: { code: 'no_worker', message: 'none' } },
      });
    }
    for (const k of rig.gateway.feed.stats().consoles) maxBuffered = Math.max(maxBuffered, k.bufferedAmount);
  };
  // Emit until the feed marks the console behind, then keep going for a while.
  await waitUntil(() => {
    burst();
    return rig.gateway.feed.stats().consoles[0]?.state === 'behind';
  }, 15_000, 'console marked behind');
  const behindAt = rig.gateway.feed.stats().consoles[0].droppedDeltas;
  await waitUntil(() => {
    burst();
    return rig.gateway.feed.stats().consoles[0].droppedDeltas >= behindAt + 20;
  }, 5000, 'more deltas dropped');
  // Bounded: at most the high-water mark plus the last delta and the resync notice.
  const oneDelta = 200 * 2200 + 64 * 1024;
  assert.ok(maxBuffered <= highWaterBytes + oneDelta, `buffered ${maxBuffered} B`);
  assert.equal(rig.gateway.feed.stats().jobsKept, 200, 'the job log stays at feedSize');

  socket.resume();
  await c.next('resync', () => true, 10_000);
  const fresh = await c.next('snapshot', () => true, 10_000);
  assert.equal(fresh.jobs.length, 200);
  assert.equal(fresh.jobs.at(-1)!.id, `job-${fresh.lastSeq}`);
  rig.router.workers.set('w1', workerInfo('w1'));
  rig.router.emit({ kind: 'worker-up', worker: workerInfo('w1') });
  await c.next('delta', (d) => d.workers.some((w) => w.id === 'w1'));
  assert.equal(rig.gateway.feed.stats().consoles[0].state, 'live');
});

test('the feed ticks only while a console is open and removes its router observer on close', async (t) => {
  const rig = await startRig(t);
  assert.equal(rig.router.observers.size, 1, 'recording starts with the gateway');
  assert.equal(rig.gateway.feed.stats().ticking, false);
  const c = await ConsoleClient.connect(t, rig.wsUrl);
  await c.next('snapshot');
  assert.equal(rig.gateway.feed.stats().ticking, true);
  c.ws.close();
  await waitUntil(() => rig.gateway.openConsoles === 0, 2000, 'console gone');
  assert.equal(rig.gateway.feed.stats().ticking, false);

  const c2 = await ConsoleClient.connect(t, rig.wsUrl);
  await c2.next('snapshot');
  await rig.gateway.close();
  assert.equal((await within(c2.closed, 5000, 'the gateway to close the console')).code, 1001);
  assert.equal(rig.router.observers.size, 0);
  assert.deepEqual({ ticking: rig.gateway.feed.stats().ticking, observing: rig.gateway.feed.stats().observing }, { ticking: false, observing: false });
  assert.equal(await handshakeStatus(`${rig.wsUrl}${CONSOLE_PATH}`, consoleProtocols(TOKENS.admin), {}), 503);
});

test('with the real router: one observer while the server runs, none after close; consoles are closed with 1001', async (t) => {
  const router = new LocalRouter({ defaultTimeoutMs: 1000, maxQueue: 10 }, createLogger({ level: 'silent' }));
  let live = 0;
  const observe = router.observe.bind(router);
  router.observe = (o) => {
    live += 1;
    const remove = observe(o);
    return () => {
      live -= 1;
      return remove();
    };
  };
  const rig = await startRig(t, {}, router as never);
  const c = await ConsoleClient.connect(t, rig.wsUrl);
  await c.next('snapshot');
  assert.equal(live, 1);
  await rig.gateway.close();
  assert.equal(live, 0);

  const s = await startTestServer(t);
  const c2 = await ConsoleClient.connect(t, s.wsUrl);
  await c2.next('snapshot');
  await within(s.close(), 15_000, 'the server to close');
  assert.deepEqual(await within(c2.closed, 5000, 'the server to close the console on shutdown'), { code: 1001, reason: 'server shutting down' });
  assert.equal(s.console.feed.stats().observing, false);
});
