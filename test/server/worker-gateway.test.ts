import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { FakeAgent, handshakeStatus } from '../helpers/fake-agent.ts';
import { dispatch, startTestServer, TOKENS } from '../helpers/server.ts';

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
    const { code, reason } = await a.closed;
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
  assert.equal((await a.closed).code, 1008);
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
  assert.equal((await a.closed).code, 1009);
});

test('heartbeat: a worker that stops answering pings is terminated within 2 × heartbeatMs, its jobs fail', async (t) => {
  const s = await startTestServer(t, { heartbeatMs: 150 });
  const a = await FakeAgent.connect(t, s.wsUrl, { autoPong: false });
  const pending = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 20_000, request: { method: 'GET', url: 'http://127.0.0.1:1/' } });
  await a.nextJob();
  const started = Date.now();
  const r = await pending;
  const elapsed = Date.now() - started;
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.match(r.body.error.message, /heartbeat/);
  // The contract's bound is 2 × heartbeatMs; the slack absorbs timer lateness on a loaded machine.
  assert.ok(elapsed <= 2 * 150 + 250, `detected after ${elapsed} ms`);
  await a.closed;
  assert.equal(s.router.stats().workers, 0);
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
