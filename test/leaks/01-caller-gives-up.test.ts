/**
 * Audit finding 1: "a caller gives up (timeout, cancel, client abort) and its response
 * slot stays behind". Here every job ends in the router's one removal path; after
 * thousands of given-up dispatches the job table, the pool queues, the deadline and
 * no-worker timers and the per-job abort listeners must all be back to zero.
 */
import assert from 'node:assert/strict';
import { getEventListeners, setMaxListeners } from 'node:events';
import { test } from 'node:test';
import { FlowtestError } from '../../shared/errors.ts';
import type { DispatchRequest } from '../../shared/protocol.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { rng, runPool, seedFrom } from '../helpers/prng.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { startTestServer } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const request = (path: string) => ({ method: 'GET', url: `http://127.0.0.1:9${path}` });
const idle = { pending: 0, queued: 0, inFlight: 0 };

test('finding 1 (caller gives up): 3,000 timed-out, cancelled and aborted dispatches leave no table entry, timer or listener', async (t) => {
  const seed = seedFrom('FLOWTEST_LEAK_SEED');
  t.diagnostic(`seed ${seed} (replay with FLOWTEST_LEAK_SEED=${seed})`);
  const random = rng(seed);
  const baseline = resources();

  const s = await startTestServer(t, { heartbeatMs: 60_000 });
  // Jobs to /ok are answered; jobs to /hang never are, so they end by deadline or abort.
  const onJob = (job: { id: string; request: { url: string } }, a: ScriptedAgent) => {
    if (job.request.url.endsWith('/ok')) setImmediate(() => a.reply(job.id));
  };
  const agents = [await ScriptedAgent.connect(s.wsUrl, { concurrency: 4, onJob }), await ScriptedAgent.connect(s.wsUrl, { concurrency: 4, onJob })];
  const client = new HttpClient(s.url, 64);
  t.after(() => {
    client.destroy();
    for (const a of agents) a.ws.terminate();
  });
  const timersWithAgents = resources().Timeout ?? 0;

  // Every held job that ends for a reason of ours must cost the worker exactly one cancel.
  const started = new Set<string>();
  let cancelsOwed = 0;
  const stopObserving = s.router.observe((e) => {
    if (e.kind === 'job-start') started.add(e.id);
    if (e.kind === 'job-end' && started.delete(e.job.id) && (e.job.outcome === 'timeout' || e.job.outcome === 'cancelled')) cancelsOwed += 1;
  });

  // Over HTTP: the path a CI client takes, abort included.
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  await runPool(3000, 64, async () => {
    const kind = random.pick(['ok', 'timeout', 'timeout', 'abort', 'abort', 'no-worker'] as const);
    const ac = new AbortController();
    let abortTimer: NodeJS.Timeout | undefined;
    const body =
      kind === 'ok' ? { pool: 'pool1', timeoutMs: 5000, request: request('/ok') }
      : kind === 'timeout' ? { pool: 'pool1', timeoutMs: random.int(5, 60), request: request('/hang') }
      : kind === 'abort' ? { pool: 'pool1', timeoutMs: 30_000, request: request('/hang') }
      : { pool: 'nobody', timeoutMs: 5000, waitForWorkerMs: random.int(1, 20), request: request('/hang') };
    if (kind === 'abort') abortTimer = setTimeout(() => ac.abort(), random.int(0, 25));
    try {
      const r = await client.dispatch('acme', body, { signal: ac.signal });
      count(r.status === 200 ? 'ok' : r.body.error.code);
    } catch {
      count('client-aborted');
    } finally {
      clearTimeout(abortTimer);
    }
  });
  for (const k of ['ok', 'timeout', 'client-aborted', 'no_worker']) assert.ok((outcomes.get(k) ?? 0) > 100, `too few ${k}: ${JSON.stringify([...outcomes])}`);
  t.diagnostic(`over HTTP: ${JSON.stringify(Object.fromEntries(outcomes))}`);

  // Straight into the router with one shared signal: every job adds an abort listener to
  // it, and every job must take its listener away again when it ends.
  const shared = new AbortController();
  setMaxListeners(5000, shared.signal);
  let peakListeners = 0;
  const direct = new Map<string, number>();
  await runPool(2000, 200, async () => {
    const kind = random.pick(['ok', 'timeout', 'abort', 'no-worker'] as const);
    const own = new AbortController();
    const signal = kind === 'abort' ? AbortSignal.any([shared.signal, own.signal]) : shared.signal;
    const body: DispatchRequest =
      kind === 'ok' ? { pool: 'pool1', timeoutMs: 5000, request: request('/ok') }
      : kind === 'no-worker' ? { pool: 'nobody', timeoutMs: 5000, waitForWorkerMs: random.int(1, 20), request: request('/hang') }
      : { pool: 'pool1', timeoutMs: kind === 'timeout' ? random.int(5, 60) : 30_000, request: request('/hang') };
    const abortTimer = kind === 'abort' ? setTimeout(() => own.abort(), random.int(0, 25)) : undefined;
    const pending = s.router.dispatch('acme', body, signal);
    peakListeners = Math.max(peakListeners, getEventListeners(shared.signal, 'abort').length);
    try {
      await pending;
      direct.set('ok', (direct.get('ok') ?? 0) + 1);
    } catch (err) {
      assert.ok(err instanceof FlowtestError, String(err));
      direct.set(err.code, (direct.get(err.code) ?? 0) + 1);
    } finally {
      clearTimeout(abortTimer);
    }
  });
  t.diagnostic(`direct: ${JSON.stringify(Object.fromEntries(direct))}; peak listeners on the shared signal ${peakListeners}`);
  assert.ok((direct.get('cancelled') ?? 0) > 100 && (direct.get('timeout') ?? 0) > 100, JSON.stringify([...direct]));
  assert.ok(peakListeners > 10, 'jobs listen on the caller signal while they run');
  assert.equal(getEventListeners(shared.signal, 'abort').length, 0, 'abort listeners left on the caller signal');

  // Tables and timers: only the two workers and their heartbeats remain. (A client abort is
  // answered at the client at once; the server learns of it when the socket closes.)
  await waitUntil(() => s.router.stats().pending === 0, 5000, 'every abort seen by the server');
  assert.deepEqual(s.router.stats(), { ...idle, workers: 2, pools: 1 });
  assert.deepEqual(s.router.poolStats().map((p) => p.queued), [0]);
  await waitUntil(() => (resources().Timeout ?? 0) === timersWithAgents, 5000, 'deadline and no-worker timers cleared');
  await waitUntil(() => agents[0].cancels + agents[1].cancels === cancelsOwed, 5000, `one cancel per given-up held job (${cancelsOwed})`);
  assert.ok(cancelsOwed > 100);
  assert.equal(started.size, 0, 'every started job ended');
  stopObserving();

  // And once everything is closed, the process holds what it held before.
  client.destroy();
  for (const a of agents) a.ws.close();
  await within(Promise.all(agents.map((a) => a.closed)), 5000, 'the worker sockets to close');
  await within(s.close(), 15_000, 'the server to close');
  assert.deepEqual(s.router.stats(), { ...idle, workers: 0, pools: 0 });
  await waitForResources(baseline);
});
