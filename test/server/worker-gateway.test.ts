import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { FakeAgent, handshakeStatus } from '../helpers/fake-agent.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { dispatch, startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const connectUrl = (base: string, q: Record<string, string>) => `${base}/v1/workers/connect?${new URLSearchParams(q)}`;
const good = { suite: 'acme', name: 'p', concurrency: '2' };

test('handshake: bad parameters or subprotocol → 400, token → 401/403, no socket', async (t) => {
  const s = await startTestServer(t);
  const auth = (tok: string) => ({ authorization: `Bearer ${tok}` });
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), undefined, auth(TOKENS.worker)), 400, 'no subprotocol');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), ['flowtest.v0'], auth(TOKENS.worker)), 400, 'wrong subprotocol');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, { suite: 'acme', name: 'p' }), [PROTOCOL_VERSION], auth(TOKENS.worker)), 400, 'no concurrency');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, { ...good, suite: '-bad' }), [PROTOCOL_VERSION], auth(TOKENS.worker)), 400, 'bad suite');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, { ...good, concurrency: '0' }), [PROTOCOL_VERSION], auth(TOKENS.worker)), 400, 'zero concurrency');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), [PROTOCOL_VERSION], {}), 401, 'no token');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), [PROTOCOL_VERSION], auth('not-a-known-token')), 401, 'unknown token');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), [PROTOCOL_VERSION], auth(TOKENS.otherWorker)), 403, 'other suite');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, good), [PROTOCOL_VERSION], auth(TOKENS.client)), 403, 'client token');
  assert.equal(s.router.stats().workers, 0);
});

test('handshake: a refusal names the parameter; unknown parameters are ignored', async (t) => {
  const s = await startTestServer(t);
  const refusal = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const rq = request(`${s.url}/v1/workers/connect?suite=acme&name=p`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': PROTOCOL_VERSION, authorization: `Bearer ${TOKENS.worker}` },
    });
    rq.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    rq.on('upgrade', () => reject(new Error('upgraded')));
    rq.on('error', reject);
    rq.end();
  });
  assert.equal(refusal.status, 400);
  assert.match(JSON.parse(refusal.body).error.message, /^concurrency: required/);
  const url = `${s.wsUrl}/v1/workers/connect?suite=acme&name=p&concurrency=2&future=1`;
  const ws = new WebSocket(url, PROTOCOL_VERSION, { headers: { authorization: `Bearer ${TOKENS.worker}` } });
  t.after(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('error', reject);
  });
});

test('handshake: worker and admin tokens are welcomed with heartbeat and payload limit', async (t) => {
  const s = await startTestServer(t, { heartbeatMs: 5000, maxPayloadBytes: 65536 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  assert.equal(a.ws.protocol, PROTOCOL_VERSION);
  assert.deepEqual({ hb: a.welcome.heartbeatMs, max: a.welcome.maxPayloadBytes }, { hb: 5000, max: 65536 });
  assert.ok(a.welcome.workerId.length > 0);
  await FakeAgent.connect(t, s.wsUrl, { token: TOKENS.admin, name: 'admins' });
  assert.equal(s.router.stats().workers, 2);
});

// Results name the job the worker holds: one for a job it does not hold is dropped unread (see test/security/result-guard.test.ts).
for (const [label, payload] of [
  ['not JSON', () => 'this is not json'],
  ['unknown type', () => JSON.stringify({ type: 'hello' })],
  ['result without response or error', (id: string) => JSON.stringify({ type: 'result', id })],
  ['unknown agent error code', (id: string) => JSON.stringify({ type: 'result', id, error: { code: 'timeout', message: 'm' } })],
] as const) {
  test(`a bad frame (${label}) closes with 1008 and fails the jobs the worker holds`, async (t) => {
    const s = await startTestServer(t);
    const a = await FakeAgent.connect(t, s.wsUrl);
    const pending = dispatch(s, 'acme', { pool: 'pool1', request: { method: 'GET', url: 'http://127.0.0.1:1/' } });
    const job = await a.nextJob();
    a.ws.send(payload(job.id));
    const { code, reason } = await within(a.closed, 3000, 'the server to close the socket of a bad frame');
    assert.equal(code, 1008);
    assert.match(reason, /bad frame|not valid JSON/);
    const r = await pending;
    assert.equal(r.status, 502);
    assert.equal(r.body.error.code, 'worker_disconnected');
    assert.equal(s.router.stats().workers, 0);
  });
}

test('a binary frame closes with 1008', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  a.ws.send(Buffer.from('{"type":"drain"}'), { binary: true });
  assert.equal((await within(a.closed, 3000, 'the server to close the socket of a binary frame')).code, 1008);
});

test('a frame over maxPayloadBytes closes with 1009 and fails held jobs at once', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: 4096 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  const pending = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 20_000, request: { method: 'GET', url: 'http://127.0.0.1:1/' } });
  const job = await a.nextJob();
  a.reply(job.id, 200, 'x'.repeat(5000));
  const started = Date.now();
  const r = await pending;
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.ok(Date.now() - started < 1000);
  assert.equal((await within(a.closed, 3000, 'the server to close the socket of an oversize frame')).code, 1009);
});

test('heartbeat: a worker frozen right after a pong is cut within 2 × heartbeatMs of that pong, its jobs failing then', async (t) => {
  // The cut is due two ticks after the last answered ping: the next tick pings, the one
  // after finds no pong. Freezing right after a pong is the latest point in the cycle, so
  // "within 2 × heartbeat" is measured at its tightest; a cut one tick late (3 × heartbeat)
  // misses the bound by a full heartbeat less the round trip, more than the slack.
  const heartbeatMs = 500;
  const slackMs = 300; // timer lateness on a loaded 2-core box; well under heartbeatMs
  const s = await startTestServer(t, { heartbeatMs });
  const a = await FakeAgent.connect(t, s.wsUrl);
  let lastPongAt = 0;
  let pings = 0;
  const frozen = new Promise<void>((resolve) => {
    a.ws.on('ping', () => {
      // ws has already written the pong (autoPong) when it emits 'ping'. On the second
      // ping seen, stop reading: from now on every ping goes unanswered.
      if (++pings !== 2) return;
      lastPongAt = performance.now();
      (a.ws as unknown as { _socket: Socket })._socket.pause();
      resolve();
    });
  });
  const pending = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 20_000, request: { method: 'GET', url: 'http://127.0.0.1:1/' } });
  await within(a.nextJob(), 3000, 'the job');
  await within(frozen, 3 * heartbeatMs + 2000, 'two pings');
  const downAt = new Promise<number>((resolve) => {
    const stop = s.router.observe((e) => {
      if (e.kind === 'worker-down') {
        stop();
        resolve(performance.now());
      }
    });
  });
  const cutAfterMs = (await within(downAt, 4 * heartbeatMs + 2000, 'the frozen worker to be cut')) - lastPongAt;
  const r = await within(pending, 2000, 'the held job to fail');
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.match(r.body.error.message, /heartbeat/);
  t.diagnostic(`cut ${cutAfterMs.toFixed(0)} ms after the last pong (heartbeat ${heartbeatMs} ms)`);
  assert.ok(cutAfterMs <= 2 * heartbeatMs + slackMs, `cut ${cutAfterMs.toFixed(0)} ms after the last pong; the promise is 2 × ${heartbeatMs} ms`);
  assert.ok(cutAfterMs >= heartbeatMs, `cut ${cutAfterMs.toFixed(0)} ms after the last pong: before a ping could go unanswered`);
  // Reading again, the agent sees the end of the socket the server cut.
  (a.ws as unknown as { _socket: Socket })._socket.resume();
  await within(a.closed, 3000, 'the frozen worker\'s socket to close');
  assert.equal(s.router.stats().workers, 0);
});

test('heartbeat: a session that ends leaves no timer and no socket behind', async (t) => {
  // A long heartbeat: a timer left running after the session ends would stay for a minute.
  const s = await startTestServer(t, { heartbeatMs: 60_000 });
  // No socket is open yet in this test: wait for those of earlier tests to finish closing.
  await waitUntil(() => !resources().TCPSocketWrap && resources().TCPServerWrap === 1, 3000, 'earlier tests\' sockets to close');
  const baseline = resources();
  for (const end of ['agent closes', 'agent terminates', 'server closes a bad frame'] as const) {
    const a = await FakeAgent.connect(t, s.wsUrl);
    assert.ok((resources().Timeout ?? 0) > (baseline.Timeout ?? 0), 'an open session has its heartbeat timer');
    if (end === 'agent closes') a.ws.close();
    else if (end === 'agent terminates') a.ws.terminate();
    else a.ws.send('not json');
    await within(a.closed, 3000, `the socket to close (${end})`);
    await waitUntil(() => s.router.stats().workers === 0, 3000, `the session to end (${end})`);
    await waitForResources(baseline, 2000).catch((err: Error) => {
      throw new Error(`${end}: ${err.message}`);
    });
  }
});

test('heartbeat: a worker answering pings stays, with RTT and last pong in the listing', async (t) => {
  const s = await startTestServer(t, { heartbeatMs: 50 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  // Five heartbeat intervals: a worker answering pings must survive all of them.
  await new Promise<void>((resolve) => {
    let pings = 0;
    a.ws.on('ping', () => {
      if (++pings === 5) resolve();
    });
  });
  const [w] = s.router.listWorkers('acme');
  assert.equal(w.id, a.welcome.workerId);
  assert.ok(w.lastPongAt && w.rttMs !== null && w.rttMs >= 0);
  assert.equal(a.ws.readyState, WebSocket.OPEN);
});
