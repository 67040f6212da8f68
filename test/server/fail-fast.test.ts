import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { resources } from '../helpers/resources.ts';
import { dispatch, getJson, startTestServer } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const req = { method: 'GET', url: 'http://127.0.0.1:9/' };
const empty = { pending: 0, queued: 0, inFlight: 0 };
const tables = (s: { router: { stats(): { pending: number; queued: number; inFlight: number } } }) => {
  const { pending, queued, inFlight } = s.router.stats();
  return { pending, queued, inFlight };
};

for (const how of ['close', 'terminate'] as const) {
  test(`worker socket ${how}: every held job fails with worker_disconnected at once; queued jobs go to the other worker`, async (t) => {
    const s = await startTestServer(t);
    const doomed = await FakeAgent.connect(t, s.wsUrl, { concurrency: 3 });
    const held = [0, 1, 2].map(() => dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: req }));
    for (let i = 0; i < 3; i++) await doomed.nextJob();
    const queued = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: req });
    await waitUntil(() => s.router.stats().queued === 1);
    const other = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
    // The new worker takes the queued job at once.
    const moved = await other.nextJob();

    const started = Date.now();
    if (how === 'close') doomed.ws.close(1000);
    else doomed.ws.terminate();
    const results = await within(Promise.all(held), 3000, 'the jobs held by the worker that left to fail');
    const elapsed = Date.now() - started;
    for (const r of results) {
      assert.equal(r.status, 502);
      assert.equal(r.body.error.code, 'worker_disconnected');
    }
    assert.ok(elapsed < 1000, `failed after ${elapsed} ms`);
    other.reply(moved.id);
    assert.equal((await within(queued, 3000, 'the answer of the job moved to the other worker')).status, 200);
    assert.deepEqual(tables(s), empty);
  });
}

test('jobs queued when the last worker leaves fail with no_worker (no waiting for the deadline)', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const held = dispatch(s, 'acme', { pool: 'pool1', request: req });
  await a.nextJob();
  const queued = dispatch(s, 'acme', { pool: 'pool1', request: req });
  await waitUntil(() => s.router.stats().queued === 1);
  a.ws.terminate();
  assert.equal((await within(held, 3000, 'the held job to fail')).body.error.code, 'worker_disconnected');
  assert.equal((await within(queued, 3000, 'the queued job to fail')).body.error.code, 'no_worker');
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
});

test('deadline: timeout (504) and the worker is sent cancel; the late result is dropped and counted', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  const r = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 100, request: req });
  const job = await a.nextJob();
  assert.ok(job.timeoutMs <= 100);
  const cancel = await a.next('cancel');
  assert.deepEqual(cancel, { type: 'cancel', id: job.id, reason: 'timeout' });
  const res = await within(r, 3000, 'the timed-out answer');
  assert.equal(res.status, 504);
  assert.equal(res.body.error.code, 'timeout');
  assert.deepEqual(tables(s), empty);

  a.reply(job.id); // late
  a.reply('never-existed');
  await waitUntil(async () => (await lateCount(s)) === 2, 5000, 'two late results counted');
  assert.equal(a.ws.readyState, a.ws.OPEN, 'late results are not an error');
});

test('deadline: the timer of a job that ends before it (answered, failed, client gone, worker gone) is cleared', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  // A minute-long deadline: a timer left behind by an ended job would outlive the test.
  const long = { pool: 'pool1', timeoutMs: 60_000, request: req };
  const timers = () => resources().Timeout ?? 0;
  const baseline = timers();
  const answered = dispatch(s, 'acme', long);
  a.reply((await a.nextJob()).id);
  assert.equal((await within(answered, 3000, 'the answered job')).status, 200);
  const failed = dispatch(s, 'acme', long);
  a.send({ type: 'result', id: (await a.nextJob()).id, error: { code: 'target_unreachable', message: 'x' } });
  assert.equal((await within(failed, 3000, 'the failed job')).body.error.code, 'target_unreachable');
  const ac = new AbortController();
  const abandoned = dispatch(s, 'acme', long, { signal: ac.signal });
  await a.nextJob();
  ac.abort();
  await assert.rejects(abandoned);
  await a.next('cancel');
  // The worker that leaves takes its session's heartbeat timer with it, and its job's deadline timer must go too.
  const b = await FakeAgent.connect(t, s.wsUrl, { name: 'other' });
  const orphaned = dispatch(s, 'acme', { ...long, pool: 'other' });
  await b.nextJob();
  b.ws.terminate();
  assert.equal((await within(orphaned, 3000, 'the job of the worker that left')).body.error.code, 'worker_disconnected');
  await waitUntil(() => timers() <= baseline, 2000, `active timers back to ${baseline} (now ${timers()})`);
});

async function lateCount(s: { url: string }): Promise<number> {
  const text = (await getJson(s, '/metrics')).body as string;
  return Number(/^flowtest_late_results_total (\d+)/m.exec(text)?.[1]);
}

test('a client that drops its connection cancels the job: cancel sent, tables empty', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  const ac = new AbortController();
  const r = dispatch(s, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: req }, { signal: ac.signal });
  const job = await a.nextJob();
  ac.abort();
  await assert.rejects(r);
  const cancel = await a.next('cancel');
  assert.deepEqual(cancel, { type: 'cancel', id: job.id, reason: 'client_aborted' });
  assert.deepEqual(tables(s), empty);
});

test('a client that drops while its job is queued leaves the queue', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const first = dispatch(s, 'acme', { pool: 'pool1', request: req });
  const j1 = await a.nextJob();
  const ac = new AbortController();
  const r = dispatch(s, 'acme', { pool: 'pool1', request: req }, { signal: ac.signal });
  await waitUntil(() => s.router.stats().queued === 1);
  ac.abort();
  await assert.rejects(r);
  await waitUntil(() => s.router.stats().queued === 0);
  a.reply(j1.id);
  assert.equal((await first).status, 200);
  assert.deepEqual(tables(s), empty);
  assert.equal(a.frames.filter((f) => f.type === 'job').length, 0, 'the abandoned job was never sent');
});
