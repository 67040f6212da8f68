/**
 * The agent's --health-port: /healthz, /readyz and /metrics of a real agent (runAgentMain)
 * connected to a fake dispatcher, through connect, jobs, loss, reconnect and drain.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { DEFAULTS } from '../../shared/limits.ts';
import type { ResultFrame } from '../../shared/protocol.ts';
import { runAgentMain, type AgentOptions, type HealthServer } from '../../worker-agent/main.ts';
import { FakeServer, Queue, startTarget, within } from './harness.ts';

const silent = pino({ level: 'silent' });

function options(server: string, overrides: Partial<AgentOptions> = {}): AgentOptions {
  return { server, suite: 'acme', name: 'pool-a', token: 't', concurrency: 2, allowHost: [], maxResponseBytes: DEFAULTS.maxResponseBytes, drainTimeoutMs: 2000, healthPort: 0, ...overrides };
}

async function get(base: string, path: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

/** The value of one sample in Prometheus text, e.g. `flowtest_agent_jobs_total{outcome="ok"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Polls `read` until `check` passes (bounded); for state the agent changes on its own event. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, what: string, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('healthz, readyz and metrics follow the agent: connecting, connected, jobs, loss, reconnect, drain', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const target = await startTarget((_req, res) => res.end('ok'));
  t.after(() => target.close());
  const healths = new Queue<HealthServer>();
  const main = runAgentMain(options(server.url, { allowHost: [`127.0.0.1:${target.port}`] }), {
    logger: silent,
    tuning: { random: () => 0 },
    onHealth: (h) => healths.push(h),
  });
  t.after(() => {
    process.emit('SIGINT', 'SIGINT');
    return main;
  });
  const health = await healths.next(3000, 'the health server');
  assert.match(health.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'bound to loopback by default');

  const socket = await server.nextConnection();
  assert.equal((await get(health.url, '/healthz')).status, 200);
  assert.equal((await get(health.url, '/readyz')).status, 503, 'not ready before the welcome');
  socket.welcome();
  await eventually(() => get(health.url, '/readyz'), (r) => r.status === 200, 'ready after the welcome');

  socket.send({ type: 'job', id: 'a', timeoutMs: 2000, request: { method: 'GET', url: `${target.origin}/` } });
  socket.send({ type: 'job', id: 'b', timeoutMs: 2000, request: { method: 'GET', url: 'http://169.254.169.254/' } });
  const results = [await socket.nextFrame(), await socket.nextFrame()] as ResultFrame[];
  assert.deepEqual(results.map((r) => r.error?.code ?? r.response?.status).sort(), [200, 'target_forbidden']);
  const metrics = await get(health.url, '/metrics');
  assert.match(metrics.type ?? '', /^text\/plain; version=0\.0\.4/);
  assert.equal(sample(metrics.text, 'flowtest_agent_jobs_total{outcome="ok"}'), 1);
  assert.equal(sample(metrics.text, 'flowtest_agent_jobs_total{outcome="target_forbidden"}'), 1);
  assert.equal(sample(metrics.text, 'flowtest_agent_jobs_total{outcome="target_timeout"}'), 0, 'every outcome has a series');
  assert.equal(sample(metrics.text, 'flowtest_agent_connected'), 1);
  assert.equal(sample(metrics.text, 'flowtest_agent_reconnects_total'), 0);
  assert.equal(sample(metrics.text, 'flowtest_agent_jobs_in_flight'), 0);

  // Loss: not ready, not connected, one reconnect, then ready again on the new socket.
  socket.ws.terminate();
  const second = await server.nextConnection();
  const lost = await get(health.url, '/metrics');
  assert.equal(sample(lost.text, 'flowtest_agent_connected'), 0);
  assert.equal(sample(lost.text, 'flowtest_agent_reconnects_total'), 1);
  assert.equal((await get(health.url, '/readyz')).status, 503);
  second.welcome();
  await eventually(() => get(health.url, '/readyz'), (r) => r.status === 200, 'ready on the new socket');

  // Draining: still connected, no longer ready; the process is still up.
  process.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(await second.nextFrame(), { type: 'drain' });
  assert.equal((await get(health.url, '/readyz')).status, 503);
  assert.equal((await get(health.url, '/healthz')).status, 200);
  assert.equal(sample((await get(health.url, '/metrics')).text, 'flowtest_agent_connected'), 1);
  second.ws.close(1000, 'drained');
  assert.equal(await within(main, 3000, 'main'), 0);
  // Stopped: the health server is closed with the agent.
  await assert.rejects(get(health.url, '/healthz'));
});

test('unknown paths are 404, other methods 405', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const healths = new Queue<HealthServer>();
  const main = runAgentMain(options(server.url), { logger: silent, onHealth: (h) => healths.push(h) });
  const health = await healths.next(3000, 'the health server');
  t.after(async () => {
    process.emit('SIGINT', 'SIGINT');
    await main;
  });
  assert.equal((await get(health.url, '/nope')).status, 404);
  const post = await fetch(`${health.url}/healthz`, { method: 'POST', signal: AbortSignal.timeout(3000) });
  assert.equal(post.status, 405);
  await post.text();
});

test('a health port that cannot be bound: one line on stderr, exit code 2, no connection attempted', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const port = (busy.address() as net.AddressInfo).port;
  let stderr = '';
  const code = await within(runAgentMain(options(server.url, { healthPort: port }), { logger: silent, stderr: { write: (s: string) => (stderr += s) } }), 3000, 'main');
  assert.equal(code, 2);
  assert.match(stderr, new RegExp(`^flowtest agent: --health-port ${port} on 127\\.0\\.0\\.1: cannot listen \\(EADDRINUSE\\)\\n$`));
  assert.equal(server.handshakes.length, 0);
});

test('the agent metrics pass promtool check metrics', { skip: !hasPromtool() && 'promtool not installed' }, async () => {
  const { AgentMetrics } = await import('../../worker-agent/health-server.ts');
  const metrics = new AgentMetrics({ inFlight: 3 });
  metrics.jobEnded('ok');
  metrics.connectionChanged(true);
  metrics.reconnecting();
  const text = await metrics.registry.metrics();
  const { spawnSync } = await import('node:child_process');
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10_000 });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  assert.equal(sample(text, 'flowtest_agent_jobs_in_flight'), 3);
});

function hasPromtool(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
