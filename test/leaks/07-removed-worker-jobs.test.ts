/**
 * Audit finding 7: "jobs of a removed worker left waiting forever". Every job a vanishing
 * worker holds is answered `worker_disconnected` at once — also jobs whose frames were
 * still in the server's send buffer, and dispatches racing the close — while jobs still
 * queued for the pool stay queued for its other workers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpClient, type Answer } from '../helpers/http-client.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { startTestServer } from '../helpers/server.ts';
import { trackSessions } from '../helpers/sessions.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const job = (body?: string) => ({ pool: 'pool1', timeoutMs: 30_000, request: { method: 'POST', url: 'http://127.0.0.1:9/', ...(body ? { body } : {}) } });
const timed = (p: Promise<Answer>) => p.then((r) => ({ r, at: performance.now() }));

test('finding 7 (removed worker jobs wait forever): a reset worker fails its 40 jobs at once; the queued 10 wait for the other worker', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { heartbeatMs: 60_000 });
  const client = new HttpClient(s.url, 100);
  const a = await ScriptedAgent.connect(s.wsUrl, { concurrency: 40, onJob: () => {} });
  const bJobs: string[] = [];
  const b = await ScriptedAgent.connect(s.wsUrl, { concurrency: 1, onJob: (j) => bJobs.push(j.id) });
  t.after(() => [a, b].forEach((x) => x.ws.terminate()));
  const answers = Array.from({ length: 51 }, () => timed(client.dispatch('acme', job())));
  await waitUntil(() => a.jobs === 40 && b.jobs === 1 && s.router.stats().queued === 10, 5000, '40 + 1 held, 10 queued');

  const resetAt = performance.now();
  a.reset();
  await waitUntil(() => s.router.stats().inFlight === 1, 2000, 'the reset worker gone');
  assert.equal(s.router.stats().queued, 10, 'queued jobs stay queued for the other worker');
  // B works through the rest, one at a time.
  for (let i = 0; i < 11; i++) {
    await waitUntil(() => bJobs.length > 0, 5000, `job ${i} at the other worker`);
    b.reply(bJobs.shift()!);
  }
  const done = await Promise.all(answers);
  const failed = done.filter(({ r }) => r.status !== 200);
  assert.equal(failed.length, 40);
  for (const { r } of failed) assert.equal(r.body.error.code, 'worker_disconnected');
  const lastMs = Math.max(...failed.map(({ at }) => at)) - resetAt;
  assert.ok(lastMs < 2000, `last of the 40 answered ${lastMs.toFixed(0)} ms after the reset`);
  assert.equal(done.filter(({ r }) => r.status === 200 && r.body.workerId === b.workerId).length, 11);
  t.diagnostic(`reset → last of 40 answered after ${lastMs.toFixed(1)} ms`);

  client.destroy();
  b.ws.close();
  await within(b.closed, 5000, 'the worker socket to close');
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});

test('finding 7: jobs still being written to a worker that vanishes are answered worker_disconnected at once', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { heartbeatMs: 60_000, maxPayloadBytes: 1024 * 1024 });
  const sessions = trackSessions(s);
  const client = new HttpClient(s.url, 100);
  const a = await ScriptedAgent.connect(s.wsUrl, { concurrency: 100, onJob: () => {} });
  t.after(() => a.ws.terminate());
  const session = sessions.get(a.workerId)!;
  a.socket.pause(); // it reads nothing more: the frames below pile up in the server's send buffer
  const big = 'x'.repeat(512 * 1024);
  const answers = Array.from({ length: 60 }, () => timed(client.dispatch('acme', job(big))));
  // It takes jobs until its socket is over the high-water mark; the rest wait in the queue.
  await waitUntil(() => session.held.size + s.router.stats().queued === 60, 10_000, 'all 60 jobs accepted');
  const held = session.held.size;
  const unsent = session.ws.bufferedAmount;
  assert.ok(held > 0 && unsent > 0, 'frames still being written');

  const resetAt = performance.now();
  a.reset();
  const done = await Promise.all(answers);
  const lastMs = Math.max(...done.map(({ at }) => at)) - resetAt;
  const codes = done.map(({ r }) => r.body.error?.code);
  assert.equal(codes.filter((c) => c === 'worker_disconnected').length, held);
  assert.equal(codes.filter((c) => c === 'no_worker').length, 60 - held, 'the queued ones had no other worker');
  assert.ok(lastMs < 2000, `last answered ${lastMs.toFixed(0)} ms after the reset`);
  t.diagnostic(`${held} jobs held with ${unsent} bytes of their frames unsent at the reset; last of 60 answered after ${lastMs.toFixed(1)} ms`);
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });

  client.destroy();
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});

test('finding 7: dispatches racing a clean close each get one answer at once — worker_disconnected or no_worker, never a wait for the deadline', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { heartbeatMs: 60_000 });
  const client = new HttpClient(s.url, 100);
  const codes = new Map<string, number>();
  for (let round = 0; round < 5; round++) {
    const a = await ScriptedAgent.connect(s.wsUrl, { concurrency: 100, onJob: () => {} });
    const answers = Array.from({ length: 30 }, () => timed(client.dispatch('acme', job())));
    // Close while those requests are on their way, a little later each round: some reach the worker, some arrive after.
    await waitUntil(() => a.jobs >= round * 5, 5000);
    const closedAt = performance.now();
    a.ws.close(1000, 'bye');
    const done = await Promise.all(answers);
    for (const { r } of done) {
      assert.ok(['worker_disconnected', 'no_worker'].includes(r.body.error?.code), JSON.stringify(r.body));
      codes.set(r.body.error.code, (codes.get(r.body.error.code) ?? 0) + 1);
    }
    const lastMs = Math.max(...done.map(({ at }) => at)) - closedAt;
    assert.ok(lastMs < 2000, `round ${round}: last answered ${lastMs.toFixed(0)} ms after the close`);
    await within(a.closed, 5000, `round ${round}: the worker socket to close`);
  }
  t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.ok((codes.get('worker_disconnected') ?? 0) > 0);
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
  client.destroy();
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});
