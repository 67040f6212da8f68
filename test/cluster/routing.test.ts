/** Three nodes in one process on a real nats-server: dispatch across nodes with the single node's rules and answers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster, waitAllEmpty, waitAnnounced } from '../helpers/cluster-nodes.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { dispatch, getJson, TOKENS } from '../helpers/server.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { waitUntil } from '../helpers/wait.ts';

const req = { method: 'GET', url: 'http://127.0.0.1:9/x' };

test('cluster: a dispatch at A runs on a worker at B; listings everywhere show it with its node; metrics count where the contract says', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [a, b, c] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 2 });
  const t0 = Date.now();
  for (const n of [a, c]) {
    await waitUntil(async () => (await getJson(n, '/v1/workers', TOKENS.admin)).body.workers.some((x: { id: string; node: string }) => x.id === w.welcome.workerId && x.node === 'n2'), 1000, 'the worker in every listing');
  }
  assert.ok(Date.now() - t0 < 1000);
  const suiteList = await getJson(a, '/v1/suites/acme/workers', TOKENS.client);
  assert.deepEqual(suiteList.body.workers.map((x: { node: string }) => x.node), ['n2']);
  await waitAnnounced(a, b);

  const pending = dispatch(a, 'acme', { pool: 'pool1', request: req });
  const job = await w.nextJob();
  assert.equal(job.request.url, req.url);
  w.reply(job.id, 201, 'from b');
  const res = await pending;
  assert.equal(res.status, 200);
  assert.equal(res.body.response.status, 201);
  assert.equal(res.body.response.body, 'from b');
  assert.equal(res.body.workerId, w.welcome.workerId);
  assert.equal(typeof res.body.id, 'string');

  const metricsA = (await getJson(a, '/metrics')).body as string;
  const metricsB = (await getJson(b, '/metrics')).body as string;
  // The arrival node counts the job, under the pool's own label (a pool of a worker on another node).
  assert.equal(metricSum(metricsA, 'flowtest_jobs_total', { suite: 'acme', pool: 'pool1', outcome: 'ok' }), 1);
  assert.ok(Number.isNaN(metricSum(metricsB, 'flowtest_jobs_total')), 'the holding node does not count the job');
  assert.equal(metricSum(metricsB, 'flowtest_workers_connected', { suite: 'acme', pool: 'pool1' }), 1);
  assert.ok(Number.isNaN(metricSum(metricsA, 'flowtest_workers_connected')));
  assert.equal(metricSum(metricsA, 'flowtest_cluster_nodes'), 3);

  w.ws.close();
  for (const n of nodes) await waitUntil(() => n.router.listWorkers().length === 0, 1000, 'the worker gone from every listing');
  await waitAllEmpty(nodes);
});

test('cluster: every error code crosses nodes as on one node', async (t) => {
  const { nodes } = await startCluster(t, 2, { maxQueue: 1, maxPayloadBytes: 64 * 1024, shutdownGraceMs: 300 });
  const [a, b] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitAnnounced(a, b, 'pool1', 1, 1);

  // Answered at the arrival node before any routing, as on one node.
  assert.equal((await dispatch(a, 'acme', { request: req })).body.error.code, 'invalid_request');
  assert.equal((await dispatch(a, 'acme', { pool: 'pool1', request: req }, { token: '' })).body.error.code, 'unauthorized');
  assert.equal((await dispatch(a, 'acme', { pool: 'pool1', request: req }, { token: TOKENS.otherClient })).body.error.code, 'forbidden');
  const big = await dispatch(a, 'acme', { pool: 'pool1', request: { ...req, method: 'POST', body: 'x'.repeat(70 * 1024) } });
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, 'payload_too_large');

  // no_worker: no ready worker in the pool on any node, at once.
  const t0 = Date.now();
  const none = await dispatch(a, 'acme', { pool: 'nobody', request: req });
  assert.equal(none.status, 503);
  assert.equal(none.body.error.code, 'no_worker');
  assert.ok(Date.now() - t0 < 500);

  // An agent's error code.
  let p = dispatch(a, 'acme', { pool: 'pool1', request: req });
  let job = await w.nextJob();
  w.send({ type: 'result', id: job.id, error: { code: 'target_unreachable', message: 'refused' } });
  let r = await p;
  assert.equal(r.status, 502);
  assert.equal(r.body.error.code, 'target_unreachable');

  // timeout: A's deadline decides; the worker at B is told to cancel.
  p = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 300, request: req });
  job = await w.nextJob();
  r = await p;
  assert.equal(r.status, 504);
  assert.equal(r.body.error.code, 'timeout');
  const cancel = await w.next('cancel', 2000);
  assert.equal(cancel.id, job.id);

  // cancelled: the CI client goes away; the worker at B is told to cancel.
  const ac = new AbortController();
  p = dispatch(a, 'acme', { pool: 'pool1', request: req }, { signal: ac.signal });
  job = await w.nextJob();
  ac.abort();
  await assert.rejects(p);
  assert.equal((await w.next('cancel', 2000)).id, job.id);
  await waitAllEmpty(nodes);

  // overloaded: B's one slot is held and its queue (1) is full.
  await waitAnnounced(a, b, 'pool1', 1, 1);
  const held = dispatch(a, 'acme', { pool: 'pool1', request: req });
  const heldJob = await w.nextJob();
  const queued = dispatch(a, 'acme', { pool: 'pool1', request: req });
  await waitUntil(() => b.router.stats().queued === 1, 2000, 'the second job queued at B');
  r = await dispatch(a, 'acme', { pool: 'pool1', request: req });
  assert.equal(r.status, 429);
  assert.equal(r.body.error.code, 'overloaded');

  // worker_disconnected within 100 ms: the worker at B closes while it holds a job from A.
  const t1 = Date.now();
  w.ws.terminate();
  r = await held;
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.ok(Date.now() - t1 <= 100, `failed after ${Date.now() - t1} ms`);
  void heldJob;
  // The queued job was never held: with no ready worker anywhere it fails no_worker (waitForWorkerMs 0), not a timeout.
  r = await queued;
  assert.equal(r.body.error.code, 'no_worker');
  await waitAllEmpty(nodes);

  // shutting_down across nodes: B shuts down holding a job from A; after B's grace A answers shutting_down.
  const w2 = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitAnnounced(a, b, 'pool1', 1, 1);
  const atB = dispatch(a, 'acme', { pool: 'pool1', request: req });
  await w2.nextJob();
  const bClosed = b.close();
  r = await atB;
  assert.equal(r.status, 503);
  assert.equal(r.body.error.code, 'shutting_down');
  await bClosed;
  // A keeps serving (alone now): a pool with no worker anywhere is no_worker at once.
  await waitUntil(() => a.cluster!.liveNodes === 1, 1000, 'A to see B leave');
  r = await dispatch(a, 'acme', { pool: 'pool1', request: req });
  assert.equal(r.body.error.code, 'no_worker');
  await waitAllEmpty([a]);
});

test('cluster: pinning reaches the node holding the worker; a pin to no open worker is no_worker', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [a, b, c] = nodes;
  const wb = await FakeAgent.connect(t, b.wsUrl);
  const wc = await FakeAgent.connect(t, c.wsUrl);
  await waitUntil(() => a.router.listWorkers().length === 2, 1000, 'both workers listed at A');
  for (const [w, other] of [[wc, wb], [wb, wc]] as const) {
    const p = dispatch(a, 'acme', { pool: 'pool1', workerId: w.welcome.workerId, request: req });
    const job = await w.nextJob();
    w.reply(job.id, 200, 'pinned');
    const r = await p;
    assert.equal(r.body.workerId, w.welcome.workerId);
    assert.equal(other.frames.filter((f) => f.type === 'job').length, 0);
  }
  const r = await dispatch(a, 'acme', { pool: 'pool1', workerId: 'no-such-worker', request: req });
  assert.equal(r.body.error.code, 'no_worker');
  await waitAllEmpty(nodes);
});

test('cluster: a job waiting for a worker (waitForWorkerMs) goes to the node where one connects', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const p = dispatch(a, 'acme', { pool: 'pool1', waitForWorkerMs: 5000, request: req });
  await waitUntil(() => a.router.stats().queued === 1, 2000, 'queued at A');
  const w = await FakeAgent.connect(t, b.wsUrl);
  const job = await w.nextJob(3000);
  w.reply(job.id);
  assert.equal((await p).status, 200);
  await waitAllEmpty(nodes);
});

test('cluster: a queued job whose node lost its last ready worker is handed to a node with one (never held, so no retry)', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [a, b, c] = nodes;
  const wb = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitAnnounced(a, b, 'pool1', 1, 1);
  const first = dispatch(a, 'acme', { pool: 'pool1', request: req });
  await wb.nextJob();
  await waitAnnounced(a, b, 'pool1', 1, 0);
  const second = dispatch(a, 'acme', { pool: 'pool1', request: req });
  await waitUntil(() => b.router.stats().queued === 1, 2000, 'the second job queued at B');
  const wc = await FakeAgent.connect(t, c.wsUrl, { concurrency: 1 });
  await waitAnnounced(b, c, 'pool1', 1, 1);
  await waitAnnounced(a, c, 'pool1', 1, 1);
  wb.ws.terminate();
  assert.equal((await first).body.error.code, 'worker_disconnected');
  const job = await wc.nextJob(2000);
  wc.reply(job.id, 200, 'from c');
  const r = await second;
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body, 'from c');
  await waitAllEmpty(nodes);
});

test('cluster: a node shutting down cleanly says so at once, finishes its jobs within the grace, and the others keep serving', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const { startTestServer } = await import('../helpers/server.ts');
  const { waitFormed } = await import('../helpers/cluster-nodes.ts');
  const c = await startTestServer(t, { nats: `nats://${a.cluster!.link.nc.getServer()}`, nodeId: 'n3', shutdownGraceMs: 5000 });
  await waitFormed([a, b, c]);
  const wc = await FakeAgent.connect(t, c.wsUrl, { concurrency: 1 });
  const wb = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitAnnounced(a, c, 'pool1', 1, 1);
  await waitAnnounced(a, b, 'pool1', 1, 1);
  await waitUntil(() => a.router.listWorkers().length === 2, 1000, 'both workers listed at A');
  const pinned = dispatch(a, 'acme', { pool: 'pool1', workerId: wc.welcome.workerId, request: req });
  const job = await wc.nextJob();
  const closing = c.close();
  await waitUntil(() => a.cluster!.membership.peer('n3')?.leaving === true, 1000, 'A to hear C leaving');
  // New work goes elsewhere while C finishes what it holds.
  const other = dispatch(a, 'acme', { pool: 'pool1', request: req });
  const jb = await wb.nextJob();
  wb.reply(jb.id, 200, 'b');
  assert.equal((await other).status, 200);
  wc.reply(job.id, 200, 'c finished');
  const r = await pinned;
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body, 'c finished');
  await closing;
  await waitUntil(() => a.cluster!.liveNodes === 2 && a.router.listWorkers().length === 1, 1000, 'C gone from A');
  await waitAllEmpty([a, b]);
});

test('cluster: a worker that just connected at B takes a dispatch at A at once (B announces the change, not at its next period)', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  for (let round = 0; round < 4; round++) {
    const w = await FakeAgent.connect(t, b.wsUrl);
    await waitUntil(() => a.router.listWorkers().some((x) => x.id === w.welcome.workerId), 1000, 'the worker listed at A');
    await waitUntil(() => (a.cluster!.membership.peer('n2')?.pools.get('acme/pool1')?.ready ?? 0) > 0, 200, 'A to hear B announce the pool');
    const p = dispatch(a, 'acme', { pool: 'pool1', request: req });
    const job = await w.nextJob();
    w.reply(job.id);
    assert.equal((await p).status, 200);
    w.ws.close();
    await waitUntil(() => a.router.listWorkers().length === 0 && (a.cluster!.membership.peer('n2')?.pools.get('acme/pool1')?.ready ?? 0) === 0, 1000, 'the worker gone at A');
  }
  await waitAllEmpty(nodes);
});

test('cluster: an HTTP listing at A reads in flight and last pong where the worker is', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 3 });
  await waitUntil(() => a.router.listWorkers().length === 1, 1000, 'the worker listed at A');
  const p = dispatch(b, 'acme', { pool: 'pool1', request: req });
  const job = await w.nextJob();
  const listed = await getJson(a, '/v1/suites/acme/workers', TOKENS.client);
  assert.deepEqual(
    listed.body.workers.map((x: { id: string; node: string; inFlight: number }) => [x.id, x.node, x.inFlight]),
    [[w.welcome.workerId, 'n2', 1]],
  );
  w.reply(job.id);
  await p;
  await waitAllEmpty(nodes);
});

test('cluster: a worker event lost on the way is repaired: the announced count disagrees, the node is asked again', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl);
  await waitUntil(() => a.router.listWorkers().length === 1, 1000, 'the worker listed at A');
  // A forged "down" stands for an "up" A never heard: A's directory loses the worker.
  const nonce = a.cluster!.membership.peer('n2')!.nonce;
  a.cluster!.link.nc.publish('flowtest.cluster.workers', JSON.stringify({ node: 'n2', nonce, kind: 'down', workerId: w.welcome.workerId }));
  await waitUntil(() => a.router.listWorkers().length === 0, 1000, 'A to drop the worker');
  await waitUntil(() => a.router.listWorkers().length === 1, 2500, 'A to list it again after two announcements that disagree');
  w.ws.close();
  await waitAllEmpty(nodes);
});

test('cluster: a worker at B that disconnects while it holds a job from A fails it at A with worker_disconnected within 100 ms', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitAnnounced(a, b, 'pool1', 1, 1);
  // A short deadline: were the failure not forwarded, the job would end by it as timeout, in seconds.
  const p = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 3000, request: req });
  await w.nextJob();
  const started = performance.now();
  w.ws.terminate();
  const r = await p;
  const ms = performance.now() - started;
  assert.equal(r.status, 502);
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.ok(ms <= 100, `failed at A ${ms.toFixed(0)} ms after the worker at B went`);
  await waitAllEmpty(nodes);
});
