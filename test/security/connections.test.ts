/**
 * Connections (contract "Security (v1.1)"): the HTTP server's own timeouts for headers
 * (10 s) and a whole request (60 s), and a cap on open connections defaulting to the
 * open-file limit less a reserve. Timeouts are shortened through config so the test is fast.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { parseServerConfig } from '../../server/config.ts';
import { defaultMaxConnections, openFileLimit, parseProcLimits } from '../../server/connection-limits.ts';
import { DEFAULTS } from '../../shared/limits.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { dispatch, startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

function rawSocket(t: TestContext, port: number): Promise<Socket & { received: string; closedAt: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    const s = Object.assign(socket, { received: '', closedAt: new Promise<number>((r) => socket.once('close', () => r(performance.now()))) });
    socket.on('data', (d) => (s.received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.once('connect', () => resolve(s));
    socket.once('error', reject);
  });
}

/** Writes `text` a piece every `everyMs` until the socket closes; returns a stopper. */
function trickle(socket: Socket, text: string, everyMs: number): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]);
  }, everyMs);
  return () => clearInterval(timer);
}

test('defaults: headers 10 s, request 60 s, worker concurrency 256, connections from the open-file limit', async (t) => {
  const c = parseServerConfig({});
  assert.equal(c.headersTimeoutMs, 10_000);
  assert.equal(c.requestTimeoutMs, 60_000);
  assert.equal(c.maxWorkerConcurrency, 256);
  assert.equal(c.maxConnections, undefined, 'derived at start');
  assert.throws(() => parseServerConfig({ headersTimeoutMs: 2000, requestTimeoutMs: 1000 }), /request-timeout/);

  assert.equal(parseProcLimits('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n'), 1024);
  assert.equal(parseProcLimits('Max open files            unlimited            unlimited            files\n'), null);
  assert.equal(defaultMaxConnections(1024, 64), 960);
  assert.equal(defaultMaxConnections(10, 64), 1);
  assert.equal(defaultMaxConnections(null), null);
  const limit = openFileLimit();
  if (process.platform === 'linux') assert.ok(limit === null || limit > 0);

  const s = await startTestServer(t);
  assert.equal(s.maxConnections, limit === null ? null : limit - DEFAULTS.connectionsFdReserve);
});

test('slow headers: a client that never finishes its headers is cut after --headers-timeout-ms', async (t) => {
  const s = await startTestServer(t, { headersTimeoutMs: 400, requestTimeoutMs: 5_000 });
  const socket = await rawSocket(t, s.port);
  const started = performance.now();
  t.after(trickle(socket, `GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-Slow: y\r\n'.repeat(50)}`, 50));
  const closedAt = await within(socket.closedAt, 5_000, 'the slow-headers client to be cut');
  const ms = closedAt - started;
  t.diagnostic(`cut after ${ms.toFixed(0)} ms: ${JSON.stringify(socket.received.split('\r\n')[0])}`);
  assert.ok(ms >= 350 && ms < 3_000, `cut after ${ms.toFixed(0)} ms`);
  assert.match(socket.received, /^HTTP\/1\.1 408/);
});

test('slow body: a client that trickles its body is cut after --request-timeout-ms', async (t) => {
  const s = await startTestServer(t, { headersTimeoutMs: 300, requestTimeoutMs: 800 });
  const socket = await rawSocket(t, s.port);
  const started = performance.now();
  const body = JSON.stringify({ pool: 'p', request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  socket.write(`POST /v1/suites/acme/dispatch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.client}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  t.after(trickle(socket, body, 100));
  const ms = (await within(socket.closedAt, 6_000, 'the slow-body client to be cut')) - started;
  t.diagnostic(`cut after ${ms.toFixed(0)} ms`);
  assert.ok(ms >= 700 && ms < 4_000, `cut after ${ms.toFixed(0)} ms`);
});

test('a dispatch that waits longer than --request-timeout-ms for its worker still gets its answer', async (t) => {
  // Limits far above a loaded machine's event-loop stalls: Node's periodic check runs in the timers
  // phase, before the poll phase reads a just-accepted connection's headers, so a stall longer than
  // the headers timeout would expire a connection whose request is already in the kernel's buffer.
  const s = await startTestServer(t, { headersTimeoutMs: 1_000, requestTimeoutMs: 1_200 });
  const agent = await FakeAgent.connect(t, s.wsUrl);
  const pending = dispatch(s, 'acme', { pool: 'pool1', request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  const job = await agent.nextJob();
  const started = performance.now();
  await waitUntil(() => performance.now() - started > 2_500, 6_000, 'well past the request timeout');
  agent.reply(job.id);
  assert.equal((await pending).status, 200);
});

test('--max-connections: connections past the cap are closed at once; freed slots are reusable', async (t) => {
  const s = await startTestServer(t, { maxConnections: 3 });
  assert.equal(s.maxConnections, 3);
  const agent = await FakeAgent.connect(t, s.wsUrl); // a worker socket counts too
  const a = await rawSocket(t, s.port);
  const b = await rawSocket(t, s.port);
  const over = await rawSocket(t, s.port);
  const started = performance.now();
  const closed = await within(over.closedAt, 5_000, 'the connection over the cap to be closed');
  assert.ok(closed - started < 2_000);
  assert.equal(over.received, '', 'no answer, just closed');
  assert.equal(agent.ws.readyState, agent.ws.OPEN);
  a.destroy();
  await within(a.closedAt, 5_000, 'the destroyed connection to close');
  await waitUntil(async () => {
    const c = await rawSocket(t, s.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const got = await Promise.race([c.closedAt.then(() => false), new Promise<boolean>((r) => c.once('data', () => r(true)))]);
    c.destroy();
    return got;
  }, 5_000, 'a freed slot serves again');
  b.destroy();
});
