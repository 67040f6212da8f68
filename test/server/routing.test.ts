import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { dispatch, startTestServer } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const req = (path = '/') => ({ method: 'GET', url: `http://127.0.0.1:9${path}` });

test('no_worker at once when the pool is empty and waitForWorkerMs is 0', async (t) => {
  const s = await startTestServer(t);
  const r = await dispatch(s, 'acme', { pool: 'nobody', request: req() });
  assert.equal(r.status, 503);
  assert.equal(r.body.error.code, 'no_worker');
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
});

test('waitForWorkerMs: a worker that connects during the wait gets the job', async (t) => {
  const s = await startTestServer(t);
  const pending = dispatch(s, 'acme', { pool: 'late', waitForWorkerMs: 5000, request: req() });
  // The job is queued before the worker exists.
  await waitUntil(() => s.router.stats().queued > 0);
  const a = await FakeAgent.connect(t, s.wsUrl, { name: 'late' });
  const job = await a.nextJob();
  a.reply(job.id, 201, 'hi');
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.body.response.status, 201);
  assert.equal(r.body.workerId, a.welcome.workerId);
});

test('waitForWorkerMs: no_worker when nobody comes within the wait', async (t) => {
  const s = await startTestServer(t);
  const started = Date.now();
  const r = await dispatch(s, 'acme', { pool: 'late', waitForWorkerMs: 150, request: req() });
  assert.equal(r.body.error.code, 'no_worker');
  assert.ok(Date.now() - started >= 140);
  assert.equal(s.router.stats().pending, 0);
});

test('least-loaded routing by free slots; concurrency never exceeded; FIFO queue', async (t) => {
  const s = await startTestServer(t);
  const big = await FakeAgent.connect(t, s.wsUrl, { concurrency: 2 });
  const small = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const p = [0, 1, 2, 3, 4].map((i) => dispatch(s, 'acme', { pool: 'pool1', request: req(`/${i}`) }));
  // 3 slots in all: big takes 2, small 1; two wait in the queue.
  const j1 = await big.nextJob();
  const j2 = await big.nextJob();
  const j3 = await small.nextJob();
  await waitUntil(() => s.router.stats().queued >= 2);
  assert.deepEqual(s.router.stats(), { pending: 5, queued: 2, inFlight: 3, workers: 2, pools: 1 });
  assert.equal(big.frames.length + small.frames.length, 0, 'no worker got more than its concurrency');
  const held = new Set([j1, j2, j3].map((j) => new URL(j.request.url).pathname));
  assert.equal(held.size, 3);

  // Freeing small's slot sends it the oldest queued job.
  small.reply(j3.id);
  const j4 = await small.nextJob();
  const firstQueued = ['/0', '/1', '/2', '/3', '/4'].filter((x) => !held.has(x));
  assert.equal(new URL(j4.request.url).pathname, firstQueued[0]);
  big.reply(j1.id);
  const j5 = await big.nextJob();
  assert.equal(new URL(j5.request.url).pathname, firstQueued[1]);
  for (const [a, j] of [[big, j2], [small, j4], [big, j5]] as const) a.reply(j.id);
  const results = await Promise.all(p);
  assert.ok(results.every((r) => r.status === 200));
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 2, pools: 1 });
});

test('a job goes to the worker with the lowest load relative to its concurrency', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 4 });
  const b = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  // a: 0/4, b: 0/1 → a (more free slots). Then a: 1/4 (0.25) vs b: 0/1 (0) → b.
  const p1 = dispatch(s, 'acme', { pool: 'pool1', request: req() });
  const ja = await a.nextJob();
  const p2 = dispatch(s, 'acme', { pool: 'pool1', request: req() });
  const jb = await b.nextJob();
  a.reply(ja.id);
  b.reply(jb.id);
  assert.equal((await p1).body.workerId, a.welcome.workerId);
  assert.equal((await p2).body.workerId, b.welcome.workerId);
});

test('overloaded (429) when the pool queue is full', async (t) => {
  const s = await startTestServer(t, { maxQueue: 1 });
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const p1 = dispatch(s, 'acme', { pool: 'pool1', request: req() });
  const j1 = await a.nextJob();
  const p2 = dispatch(s, 'acme', { pool: 'pool1', request: req() });
  await waitUntil(() => s.router.stats().queued >= 1);
  const r3 = await dispatch(s, 'acme', { pool: 'pool1', request: req() });
  assert.equal(r3.status, 429);
  assert.equal(r3.body.error.code, 'overloaded');
  a.reply(j1.id);
  const j2 = await a.nextJob();
  a.reply(j2.id);
  assert.equal((await p1).status, 200);
  assert.equal((await p2).status, 200);
});

test('pinning by workerId; an unknown worker id is no_worker', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  const b = await FakeAgent.connect(t, s.wsUrl);
  for (let i = 0; i < 3; i++) {
    const p = dispatch(s, 'acme', { pool: 'pool1', workerId: b.welcome.workerId, request: req() });
    const j = await b.nextJob();
    b.reply(j.id);
    assert.equal((await p).body.workerId, b.welcome.workerId);
  }
  assert.equal(a.frames.length, 0);
  const r = await dispatch(s, 'acme', { pool: 'pool1', workerId: 'nope', request: req() });
  assert.equal(r.body.error.code, 'no_worker');
});

test('a draining worker takes no new job; queued jobs wait for the others; it is closed once it holds nothing', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 2 });
  const first = dispatch(s, 'acme', { pool: 'pool1', request: req() });
  const held = await a.nextJob();
  a.send({ type: 'drain' });
  await waitUntil(() => s.router.listWorkers('acme')[0]?.state === 'draining');
  const r = await dispatch(s, 'acme', { pool: 'pool1', request: req() });
  assert.equal(r.body.error.code, 'no_worker', 'a free slot on a draining worker is not used');
  const pending = dispatch(s, 'acme', { pool: 'pool1', waitForWorkerMs: 5000, request: req() });
  const b = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const j = await b.nextJob();
  b.reply(j.id);
  assert.equal((await pending).body.workerId, b.welcome.workerId);
  assert.equal(a.frames.length, 0);
  // The job it held still completes; then the server closes it (nothing can be on the way).
  a.reply(held.id);
  assert.equal((await first).status, 200);
  assert.deepEqual(await within(a.closed, 3000, 'the server to close the drained worker'), { code: 1000, reason: 'drained' });
});

test('a worker that drains holding nothing is closed by the server at once with 1000', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  a.send({ type: 'drain' });
  assert.deepEqual(await within(a.closed, 3000, 'the server to close the worker that drained holding nothing'), { code: 1000, reason: 'drained' });
  await waitUntil(() => s.router.stats().workers === 0);
});
