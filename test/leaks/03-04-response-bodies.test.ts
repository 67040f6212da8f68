/**
 * Audit findings 3 and 4: "HTTP response bodies left open on error paths". The agent
 * must read every target response to its end (its socket goes back to the keep-alive
 * pool) or destroy it, on every path: success, oversize (declared and streamed),
 * server timeout and client abort (both → cancel), loss of the agent's own socket,
 * and a target that resets or drops the connection. A response left open would keep
 * its socket out of the pool for good; so after 1,000 mixed jobs the target must see
 * no more sockets than the pool holds, and `concurrency` jobs at once must still each
 * get a socket.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { startAgent } from '../../worker-agent/main.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { rng, runPool, seedFrom } from '../helpers/prng.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { startTestServer, TOKENS } from '../helpers/server.ts';
import { trackSessions } from '../helpers/sessions.ts';
import { startTarget } from '../helpers/target.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const CONCURRENCY = 8;
const MAX_RESPONSE_BYTES = 64 * 1024;

test('findings 3 and 4 (response bodies left open): after 1,000 mixed jobs the agent holds no more than its keep-alive pool', async (t) => {
  const seed = seedFrom('FLOWTEST_LEAK_SEED');
  t.diagnostic(`seed ${seed} (replay with FLOWTEST_LEAK_SEED=${seed})`);
  const random = rng(seed);
  const baseline = resources();

  const target = await startTarget(t);
  const chunk = Buffer.alloc(16 * 1024, 'x');
  target.route('/ok', (_q, res) => res.end('ok'));
  target.route('/ok-big', (_q, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(chunk);
    res.end(chunk);
  });
  target.route('/too-large-declared', (_q, res) => {
    res.writeHead(200, { 'content-length': String(MAX_RESPONSE_BYTES * 16) });
    res.write(chunk); // and never the rest
  });
  target.route('/too-large-streamed', (_q, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (let i = 0; i < 16; i++) res.write(chunk);
    res.end();
  });
  target.route('/hang', () => {});
  target.route('/hang-body', (_q, res) => {
    res.writeHead(200, { 'content-length': '50000' });
    res.write('partial');
  });
  target.route('/reset', (q) => q.socket.resetAndDestroy());
  target.route('/reset-mid', (q, res) => {
    res.writeHead(200, { 'content-length': '50000' });
    res.write(chunk, () => q.socket.resetAndDestroy());
  });
  target.route('/close-mid', (q, res) => {
    res.writeHead(200, { 'content-length': '50000' });
    res.write(chunk, () => q.socket.destroy());
  });
  let barrier: (() => void)[] = [];
  target.route('/barrier', (_q, res) => {
    barrier.push(() => res.end('together'));
    if (barrier.length === CONCURRENCY) for (const release of barrier.splice(0)) release();
  });

  const s = await startTestServer(t, { heartbeatMs: 60_000 });
  const sessions = trackSessions(s);
  const agent = startAgent(
    { server: s.wsUrl, suite: 'acme', name: 'pool1', token: TOKENS.worker, concurrency: CONCURRENCY, allowHost: ['127.0.0.1'], maxResponseBytes: MAX_RESPONSE_BYTES, drainTimeoutMs: 1000 },
    pino({ level: 'silent' }),
    { random: () => 0 }, // reconnect at once after the socket losses below
  );
  const client = new HttpClient(s.url, 32);
  t.after(async () => {
    client.destroy();
    await agent.close();
  });
  await waitUntil(() => sessions.size === 1, 5000, 'agent connected');

  const paths = ['/ok', '/ok', '/ok-big', '/too-large-declared', '/too-large-streamed', '/hang', '/hang-body', '/reset', '/reset-mid', '/close-mid'] as const;
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  const lossTimers = new Set<NodeJS.Timeout>(); // owned here; all fired or cleared before the checks below
  await runPool(1000, 3 * CONCURRENCY, async (i) => {
    const path = random.pick(paths);
    const hangs = path === '/hang' || path === '/hang-body';
    const abort = hangs && random.chance(0.4);
    const ac = new AbortController();
    const abortTimer = abort ? setTimeout(() => ac.abort(), random.int(5, 40)) : undefined;
    // Now and then the agent loses its socket to the server while jobs run.
    if (i % 97 === 96) {
      const timer = setTimeout(() => {
        lossTimers.delete(timer);
        [...sessions.values()][0]?.terminate('test: socket lost');
      }, random.int(0, 20));
      lossTimers.add(timer);
    }
    let r;
    try {
      r = await client.dispatch(
        'acme',
        { pool: 'pool1', timeoutMs: hangs && !abort ? random.int(20, 80) : 3000, waitForWorkerMs: 3000, request: { method: 'GET', url: `${target.url}${path}` } },
        { signal: ac.signal },
      );
    } catch {
      return void count('client-aborted');
    } finally {
      clearTimeout(abortTimer);
    }
    count(r.status === 200 ? `ok ${r.body.response.status}` : r.body.error.code);
    // A route that answers at once timing out means the agent ran out of pooled sockets: fail now, not after 1,000 jobs.
    assert.ok(hangs || r.body.error?.code !== 'timeout', `a job to ${path} timed out: sockets held by unfinished responses? ${JSON.stringify(Object.fromEntries(outcomes))}`);
  });
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  for (const k of ['ok 200', 'response_too_large', 'timeout', 'client-aborted', 'target_unreachable', 'worker_disconnected']) {
    assert.ok((outcomes.get(k) ?? 0) > 0, `path not exercised: ${k}`);
  }
  for (const timer of lossTimers) clearTimeout(timer);
  // A client abort is answered at the client at once; the server learns of it when the socket closes.
  await waitUntil(() => s.router.stats().pending === 0 && sessions.size === 1, 5000, 'every abort seen and the agent connected');
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });

  // Every job ended: the target keeps at most the agent's keep-alive pool open.
  await waitUntil(() => agent.inFlight === 0, 5000, 'agent idle');
  await waitUntil(() => target.openSockets() <= CONCURRENCY, 5000, `target sockets (${target.openSockets()}) within the pool (${CONCURRENCY})`);
  // And every pool slot is free: CONCURRENCY requests reach the target together.
  barrier = [];
  const together = await Promise.all(
    Array.from({ length: CONCURRENCY }, () => client.dispatch('acme', { pool: 'pool1', timeoutMs: 5000, request: { method: 'GET', url: `${target.url}/barrier` } })),
  );
  assert.deepEqual(together.map((r) => r.body.response?.body ?? r.body.error?.code), Array(CONCURRENCY).fill('together'));
  assert.ok(target.openSockets() <= CONCURRENCY, `target sees ${target.openSockets()} sockets`);

  // Closing the agent destroys its pool: the target sees no socket left.
  await agent.close();
  await waitUntil(() => target.openSockets() === 0, 5000, 'target sockets closed');
  client.destroy();
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources({ ...baseline, TCPServerWrap: (baseline.TCPServerWrap ?? 0) + 1 }); // the target still listens
});
