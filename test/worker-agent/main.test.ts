import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { DEFAULTS } from '../../shared/limits.ts';
import { runAgentMain, type AgentOptions } from '../../worker-agent/main.ts';
import { FakeServer, within } from './harness.ts';

const silent = pino({ level: 'silent' });

function options(server: string, overrides: Partial<AgentOptions> = {}): AgentOptions {
  return { server, suite: 'acme', name: 'pool-a', token: 't', concurrency: 1, allowHost: [], maxResponseBytes: DEFAULTS.maxResponseBytes, drainTimeoutMs: 1000, ...overrides };
}

function signalListeners(): number {
  return process.listenerCount('SIGTERM') + process.listenerCount('SIGINT');
}

test('a 401 at the handshake: one line on stderr, exit code 3, signal handlers removed', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  server.rejectWith = { status: 401, body: JSON.stringify({ error: { code: 'unauthorized', message: 'unknown token' } }) };
  const before = signalListeners();
  let stderr = '';
  const code = await within(runAgentMain(options(server.url), { logger: silent, stderr: { write: (s: string) => (stderr += s) } }), 3000, 'main');
  assert.equal(code, 3);
  assert.equal(stderr, 'flowtest agent: server answered 401 Unauthorized: unknown token\n');
  assert.equal(signalListeners(), before);
});

test('SIGTERM drains: drain frame, close 1000, exit code 0, handlers removed', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const before = signalListeners();
  const main = runAgentMain(options(server.url, { allowHost: ['api.internal'] }), { logger: silent, tuning: { random: () => 0 } });
  const socket = await server.nextConnection();
  socket.welcome();
  // A round trip proves the agent has seen the socket open (a forbidden target answers at once).
  socket.send({ type: 'job', id: 'probe', timeoutMs: 1000, request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  assert.equal((await socket.nextFrame()).type, 'result');
  assert.equal(signalListeners(), before + 2);
  process.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(await socket.nextFrame(), { type: 'drain' });
  socket.ws.close(1000, 'drained'); // as the server does once the worker holds nothing
  assert.equal((await within(socket.closed, 3000, 'the close')).code, 1000);
  assert.equal(await within(main, 3000, 'main'), 0);
  assert.equal(signalListeners(), before);
});

test('invalid options: one line on stderr, exit code 2', async () => {
  const cases: [Partial<AgentOptions>, string][] = [
    [{ allowHost: ['bad host'] }, '--allow-host'],
    [{ server: 'ftp://x' }, '--server'],
    [{ suite: '-bad' }, '--suite'],
    [{ maxResponseBytes: 0 }, '--max-response-bytes'],
  ];
  for (const [bad, needle] of cases) {
    let stderr = '';
    const code = await runAgentMain(options('ws://127.0.0.1:9', bad), { logger: silent, stderr: { write: (s: string) => (stderr += s) } });
    assert.equal(code, 2);
    assert.match(stderr, new RegExp(`^flowtest agent: [^\\n]*${needle}[^\\n]*\\n$`), stderr);
  }
});
