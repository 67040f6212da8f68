import assert from 'node:assert/strict';
import type http from 'node:http';
import { test, type TestContext } from 'node:test';
import { DEFAULTS, PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../../shared/limits.ts';
import type { AgentFrame, ResultFrame } from '../../shared/protocol.ts';
import { startAgent, type AgentOptions, type AgentTuning, type WorkerAgent } from '../../worker-agent/main.ts';
import { captureLogger, Cleanup, FakeServer, once, startTarget, within, type FakeSocket, type Target } from './harness.ts';

const TOKEN = 'secret-worker-token-123';

interface Env {
  server: FakeServer;
  target: Target;
  cleanup: Cleanup;
  lines: string[];
  start(options?: Partial<AgentOptions>, tuning?: AgentTuning): WorkerAgent;
  /** Waits for the agent's socket and welcomes it. */
  connected(welcome?: Parameters<FakeSocket['welcome']>[0]): Promise<FakeSocket>;
}

/**
 * A fake server, a target (answers `/fast` with "fast", `/big` with 2000 bytes,
 * holds everything else until the test answers it) and a way to start agents.
 */
async function setup(t: TestContext): Promise<Env> {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const server = await FakeServer.start();
  cleanup.defer(() => server.close());
  const target = await startTarget((req, res) => {
    if (req.url === '/fast') res.end('fast');
    else if (req.url === '/big') res.end('x'.repeat(2000));
  });
  cleanup.defer(() => target.close());
  const { logger, lines } = captureLogger();
  return {
    server,
    target,
    cleanup,
    lines,
    start(options = {}, tuning = {}) {
      const agent = startAgent(
        // The target listens on loopback, which the agent reaches only when named.
        { server: server.url, suite: 'acme', name: 'pool-a', token: TOKEN, concurrency: 2, allowHost: [`127.0.0.1:${target.port}`], maxResponseBytes: DEFAULTS.maxResponseBytes, drainTimeoutMs: 2000, ...options },
        logger,
        { random: () => 0, ...tuning },
      );
      cleanup.defer(() => agent.close());
      return agent;
    },
    async connected(welcome = {}) {
      const socket = await server.nextConnection();
      socket.welcome(welcome);
      return socket;
    },
  };
}

function job(id: string, url: string, timeoutMs = 5000) {
  return { type: 'job', id, timeoutMs, request: { method: 'GET', url } } as const;
}

function asResult(frame: AgentFrame): ResultFrame {
  assert.equal(frame.type, 'result', `expected a result, got ${JSON.stringify(frame)}`);
  return frame as ResultFrame;
}

test('handshake carries the subprotocol, token, user agent and query; a job round-trips', async (t) => {
  const env = await setup(t);
  env.start();
  const socket = await env.connected();
  const { headers, url } = socket.request;
  assert.equal(headers['sec-websocket-protocol'], PROTOCOL_VERSION);
  assert.equal(headers.authorization, `Bearer ${TOKEN}`);
  assert.match(headers['user-agent'] ?? '', /^flowtest-agent\/\d+\.\d+\.\d+/);
  assert.equal(headers['sec-websocket-extensions'], undefined, 'perMessageDeflate is off');
  const query = new URL(url ?? '', 'http://x');
  assert.equal(query.pathname, WORKER_CONNECT_PATH);
  assert.deepEqual(Object.fromEntries(query.searchParams), { suite: 'acme', name: 'pool-a', concurrency: '2' });

  socket.send(job('j1', `${env.target.origin}/fast`));
  const result = asResult(await socket.nextFrame());
  assert.equal(result.id, 'j1');
  assert.equal(result.response?.status, 200);
  assert.equal(result.response?.body, 'fast');
  assert.equal(result.response?.bodyEncoding, 'utf8');
  assert.ok(!env.lines.some((l) => l.includes(TOKEN)), 'the token is never logged');
});

test('no --allow-host: a warning at start names what stays denied, and loopback targets are target_forbidden', async (t) => {
  const env = await setup(t);
  env.start({ allowHost: [] });
  const socket = await env.connected();
  assert.ok(env.lines.some((l) => l.includes('"level":40') && l.includes('allow-host') && l.includes('loopback')), 'warns that every other host is allowed');
  socket.send(job('j1', `${env.target.origin}/fast`));
  const result = asResult(await socket.nextFrame());
  assert.equal(result.error?.code, 'target_forbidden');
  assert.ok(!env.lines.some((l) => l.includes(TOKEN)), 'the token is never logged');
});

test('no token: no Authorization header; an http:// server address is converted to ws://', async (t) => {
  const env = await setup(t);
  env.start({ server: env.server.url.replace('ws://', 'http://'), token: undefined, allowHost: ['127.0.0.1'] });
  const socket = await env.connected();
  assert.equal(socket.request.headers.authorization, undefined);
  assert.ok(!env.lines.some((l) => l.includes('allow-host')), 'no all-hosts warning with an allow list');
});

test('cancel aborts the target request and sends nothing', async (t) => {
  const env = await setup(t);
  const agent = env.start();
  const socket = await env.connected();
  socket.send(job('slow', `${env.target.origin}/hold`));
  const { req } = await env.target.requests.next(3000, 'the target request');
  const targetClosed = once(req, 'close');
  socket.send({ type: 'cancel', id: 'slow', reason: 'timeout' });
  await targetClosed;
  assert.equal(agent.inFlight, 0);
  // The next frame is the probe's result: nothing was sent for the cancelled job.
  socket.send(job('probe', `${env.target.origin}/fast`));
  assert.equal(asResult(await socket.nextFrame()).id, 'probe');
});

test('401 and 403 at the handshake are final, with exit code 3', async (t) => {
  const env = await setup(t);
  for (const [status, exitCode] of [[401, 3], [403, 3]] as const) {
    const before = env.server.handshakes.length;
    env.server.rejectWith = { status, body: JSON.stringify({ error: { code: 'unauthorized', message: `no (${status})` } }) };
    const agent = env.start();
    const stop = await within(agent.stopped, 3000, 'the agent to stop');
    assert.equal(stop.kind, 'fatal');
    assert.ok(stop.kind === 'fatal' && stop.exitCode === exitCode);
    assert.ok(stop.kind === 'fatal' && stop.reason.includes(String(status)) && stop.reason.includes(`no (${status})`), JSON.stringify(stop));
    assert.equal(env.server.handshakes.length, before + 1, 'no retry');
  }
});

test('other handshake failures (a 400 from a proxy included) are retried with backoff', async (t) => {
  const env = await setup(t);
  env.server.rejectWith = { status: 400, body: '<html>bad request</html>' };
  env.start();
  await within((async () => {
    while (env.server.handshakes.length < 3) await once(env.server.http, 'upgrade');
  })(), 3000, 'three attempts');
  env.server.rejectWith = null;
  await env.connected();
});

test('reconnects after the server closes the socket, and works on the new one', async (t) => {
  const env = await setup(t);
  env.start();
  const first = await env.connected();
  first.ws.close(1001, 'going away');
  const second = await env.connected({ workerId: 'w2' });
  second.send(job('j2', `${env.target.origin}/fast`));
  assert.equal(asResult(await second.nextFrame()).response?.body, 'fast');
});

test('losing the socket aborts the jobs in flight at their targets', async (t) => {
  const env = await setup(t);
  const agent = env.start();
  const socket = await env.connected();
  socket.send(job('held', `${env.target.origin}/hold`));
  const { req } = await env.target.requests.next(3000, 'the target request');
  const targetClosed = once(req, 'close');
  socket.ws.terminate();
  await targetClosed;
  await env.server.nextConnection();
  assert.equal(agent.inFlight, 0);
});

test('the ping watchdog drops a silent server and reconnects; pings keep the socket up', async (t) => {
  const env = await setup(t);
  env.start({}, { watchdogSlackMs: 50 });
  const silent = await env.connected({ heartbeatMs: 50 });
  const closed = await within(silent.closed, 2000, 'the watchdog to fire');
  assert.equal(closed.code, 1006, 'terminated, not closed');

  const pinged = await env.connected({ heartbeatMs: 50 });
  const interval = setInterval(() => pinged.ws.ping(), 20);
  env.cleanup.defer(() => clearInterval(interval));
  // 15 pongs at 20 ms span twice the 150 ms watchdog limit.
  await within((async () => {
    while (pinged.pongs < 15) await once(pinged.ws, 'pong');
  })(), 3000, '15 pongs');
  clearInterval(interval);
  assert.equal(pinged.ws.readyState, pinged.ws.OPEN);
  assert.equal(env.server.connections.size, 0, 'no reconnect happened');
});

test('an invalid frame closes the socket with 1008 and the agent reconnects', async (t) => {
  const env = await setup(t);
  env.start();
  const socket = await env.connected();
  socket.send('{"type":"job","id":');
  assert.equal((await within(socket.closed, 3000, 'the close')).code, 1008);
  await env.server.nextConnection();
});

test('jobs over the concurrency and duplicate ids get invalid_job; the held job is unharmed', async (t) => {
  const env = await setup(t);
  const agent = env.start({ concurrency: 1 });
  const socket = await env.connected();
  socket.send(job('a', `${env.target.origin}/hold`));
  await env.target.requests.next(3000, 'the target request');
  socket.send(job('a', `${env.target.origin}/fast`));
  socket.send(job('b', `${env.target.origin}/fast`));
  const dup = asResult(await socket.nextFrame());
  assert.deepEqual([dup.id, dup.error?.code], ['a', 'invalid_job']);
  const over = asResult(await socket.nextFrame());
  assert.deepEqual([over.id, over.error?.code], ['b', 'invalid_job']);
  assert.equal(agent.inFlight, 1);
});

test("a result over the server's maxPayloadBytes is sent as response_too_large", async (t) => {
  const env = await setup(t);
  env.start();
  const socket = await env.connected({ maxPayloadBytes: 1000 });
  socket.send(job('big', `${env.target.origin}/big`));
  const result = asResult(await socket.nextFrame());
  assert.equal(result.error?.code, 'response_too_large');
});

test('drain: sends drain, runs a job already on its way, waits for the jobs in flight, closes with 1000, does not reconnect', async (t) => {
  const env = await setup(t);
  const agent = env.start();
  const socket = await env.connected();
  socket.send(job('j1', `${env.target.origin}/hold`));
  const held = await env.target.requests.next(3000, 'the target request');
  const drained = agent.drain();
  assert.deepEqual(await socket.nextFrame(), { type: 'drain' });
  // The server sent this before it read the drain frame: the agent still performs it.
  socket.send(job('late', `${env.target.origin}/fast`));
  const late = asResult(await socket.nextFrame());
  assert.deepEqual([late.id, late.response?.status], ['late', 200]);
  held.res.end('finished');
  const result = asResult(await socket.nextFrame());
  assert.deepEqual([result.id, result.response?.body], ['j1', 'finished']);
  // Nothing held: the server (which alone knows nothing else is on the way) closes.
  socket.ws.close(1000, 'drained');
  assert.equal((await within(socket.closed, 3000, 'the close')).code, 1000);
  await within(drained, 3000, 'drain to resolve');
  assert.deepEqual(await agent.stopped, { kind: 'drained' });
  assert.equal(env.server.handshakes.length, 1, 'no reconnect after drain');
});

test('drain holding nothing: the agent waits for the server to close and performs a job still on its way', async (t) => {
  const env = await setup(t);
  const agent = env.start();
  const socket = await env.connected();
  // A round trip proves the agent has seen the socket open.
  socket.send(job('probe', `${env.target.origin}/fast`));
  assert.equal(asResult(await socket.nextFrame()).id, 'probe');
  const drained = agent.drain();
  assert.deepEqual(await socket.nextFrame(), { type: 'drain' });
  // Routed here before the server read the drain frame: it arrives after the drain was sent.
  socket.send(job('in-transit', `${env.target.origin}/fast`));
  const result = asResult(await socket.nextFrame());
  assert.deepEqual([result.id, result.response?.status], ['in-transit', 200]);
  socket.ws.close(1000, 'drained');
  await within(drained, 3000, 'drain to resolve');
  assert.deepEqual(await agent.stopped, { kind: 'drained' });
});

test('drain grace over: the rest is answered cancelled and aborted at the target', async (t) => {
  const env = await setup(t);
  const agent = env.start({ drainTimeoutMs: 100 });
  const socket = await env.connected();
  socket.send(job('stuck', `${env.target.origin}/hold`));
  const { req } = await env.target.requests.next(3000, 'the target request');
  const targetClosed = once(req as http.IncomingMessage, 'close');
  const drained = agent.drain();
  assert.deepEqual(await socket.nextFrame(), { type: 'drain' });
  const result = asResult(await socket.nextFrame());
  assert.deepEqual([result.id, result.error?.code], ['stuck', 'cancelled']);
  assert.equal((await within(socket.closed, 3000, 'the close')).code, 1000);
  await targetClosed;
  await within(drained, 3000, 'drain to resolve');
});

test('drain while the socket is down just stops', async (t) => {
  const env = await setup(t);
  env.server.rejectWith = { status: 503, body: '' };
  const agent = env.start({}, { random: () => 0.999 }); // 0.5 s before the next try
  await once(env.server.http, 'upgrade');
  await within(agent.drain(), 3000, 'drain');
  assert.deepEqual(await agent.stopped, { kind: 'drained' });
});

test('close() is idempotent and stops at once', async (t) => {
  const env = await setup(t);
  const agent = env.start();
  const socket = await env.connected();
  socket.send(job('held', `${env.target.origin}/hold`));
  await env.target.requests.next(3000, 'the target request');
  await within(Promise.all([agent.close(), agent.close()]), 3000, 'close');
  assert.deepEqual(await agent.stopped, { kind: 'closed' });
  assert.equal(agent.inFlight, 0);
  await within(socket.closed, 3000, 'the socket to close');
  await agent.close();
});

test('a name resolving to a denied address is target_forbidden through the agent (resolver injected)', async (t) => {
  const env = await setup(t);
  const lookup = async (name: string) => {
    if (name === 'rebound.corp.test') return [{ address: '127.0.0.1', version: 4 as const }];
    throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
  let connections = 0;
  env.target.server.on('connection', () => {
    connections += 1;
  });
  env.start({ allowHost: ['*.corp.test'] }, { lookup });
  const socket = await env.connected();
  socket.send(job('j1', `http://rebound.corp.test:${env.target.port}/fast`));
  const result = asResult(await socket.nextFrame());
  assert.equal(result.error?.code, 'target_forbidden');
  assert.match(result.error?.message ?? '', /rebound\.corp\.test \(127\.0\.0\.1\) is a loopback address/);
  assert.equal(connections, 0);
});

test('per-job log lines stay at debug: nothing at info for jobs that succeed, fail or are cancelled', async (t) => {
  const env = await setup(t);
  env.start();
  const socket = await env.connected();
  socket.send(job('ok', `${env.target.origin}/fast`));
  socket.send(job('forbidden', 'http://169.254.169.254/'));
  const results = [asResult(await socket.nextFrame()), asResult(await socket.nextFrame())];
  assert.deepEqual(results.map((r) => r.id).sort(), ['forbidden', 'ok']);
  socket.send(job('held', `${env.target.origin}/hold`));
  await env.target.requests.next(3000, 'the /fast request');
  await env.target.requests.next(3000, 'the held request');
  socket.send({ type: 'cancel', id: 'held', reason: 'client_gone' });
  await within(new Promise<void>((resolve) => {
    const check = (): void => (env.lines.some((l) => l.includes('"jobId":"held"') && l.includes('cancelled')) ? resolve() : void setTimeout(check, 10));
    check();
  }), 3000, 'the cancel to be handled');
  const infoJobLines = env.lines.filter((l) => /"level":(30|40|50)/.test(l) && l.includes('"jobId"'));
  assert.deepEqual(infoJobLines, []);
});
