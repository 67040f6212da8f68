/**
 * Nodes that die, freeze, or lose NATS: node B runs as a real process (so it can be killed
 * with SIGKILL or frozen with SIGSTOP), node A in the test process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitAllEmpty, waitAnnounced, waitFormed } from '../helpers/cluster-nodes.ts';
import { startServerProc } from '../helpers/cluster.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { startNats } from '../helpers/nats.ts';
import { dispatch, getJson, startTestServer, TOKENS } from '../helpers/server.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { waitUntil, within } from '../helpers/wait.ts';
import { runServerMain } from '../../server/main.ts';

const req = { method: 'GET', url: 'http://127.0.0.1:9/x' };

function late(metrics: string): number {
  return metricSum(metrics, 'flowtest_late_results_total') || 0;
}

test('duplicate node id: a second node with a live id refuses to start (exit 2, one line)', async (t) => {
  const nats = await startNats(t);
  await startTestServer(t, { nats: nats.url, nodeId: 'same' });
  // The server entry as the CLI runs it, in this process: its stderr captured.
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
  let code: number;
  try {
    code = await within(runServerMain({ host: '127.0.0.1', port: 0, nats: nats.url, nodeId: 'same', logLevel: 'silent' }), 10_000, 'the second node to refuse the live id and exit');
  } finally {
    process.stderr.write = write;
  }
  assert.equal(code, 2);
  const text = written.join('');
  assert.equal(text.trim().split('\n').length, 1);
  assert.match(text, /node id same is already live/);
});

test('node killed with SIGKILL: its held and queued jobs fail at the arrival node within 3 s; its workers leave every listing', async (t) => {
  const nats = await startNats(t);
  const a = await startTestServer(t, { nats: nats.url, nodeId: 'a', maxQueue: 5 });
  const b = await startServerProc(t, ['--nats', nats.url, '--node-id', 'b']);
  await waitUntil(() => a.cluster!.liveNodes === 2, 3000, 'A to see B');
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  await waitUntil(() => a.router.listWorkers().length === 1, 1000, 'B worker listed at A');
  await waitUntil(() => (a.cluster!.membership.peer('b')?.pools.get('acme/pool1')?.freeSlots ?? 0) === 1, 2000, 'B pool announced');
  // Deadlines well past the 3 s promise, yet short: jobs left to their deadline fail this test in seconds.
  const held = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 10_000, request: req });
  await w.nextJob();
  await waitUntil(() => a.cluster!.membership.peer('b')?.pools.get('acme/pool1')?.freeSlots === 0, 2000, 'B full');
  const queued = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 10_000, request: req });
  await waitUntil(() => a.cluster!.clusterStats().atNodes === 1 && a.cluster!.clusterStats().arrivals === 2, 2000, 'both jobs at B');

  const t0 = Date.now();
  b.child.kill('SIGKILL');
  const [r1, r2] = await Promise.all([held, queued]);
  const took = Date.now() - t0;
  assert.equal(r1.body.error.code, 'worker_disconnected');
  assert.equal(r2.body.error.code, 'worker_disconnected');
  assert.ok(took <= 3000, `failed after ${took} ms`);
  await waitUntil(() => a.router.listWorkers().length === 0, 3000 - (Date.now() - t0), 'B worker gone from the listing');
  assert.equal(a.cluster!.liveNodes, 1);
  await waitAllEmpty([a]);
});

test('node frozen with SIGSTOP: its jobs fail within 3 s; after SIGCONT it rejoins and nothing is answered twice', async (t) => {
  const nats = await startNats(t);
  const a = await startTestServer(t, { nats: nats.url, nodeId: 'a' });
  const b = await startServerProc(t, ['--nats', nats.url, '--node-id', 'b', '--heartbeat-ms', '60000']);
  await waitUntil(() => a.cluster!.liveNodes === 2, 3000, 'A to see B');
  const w = await FakeAgent.connect(t, b.wsUrl, { concurrency: 2 });
  await waitUntil(() => (a.cluster!.membership.peer('b')?.pools.get('acme/pool1')?.freeSlots ?? 0) === 2, 2000, 'B pool announced');
  const answers: number[] = [];
  const held = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 20_000, request: req }).then((r) => {
    answers.push(r.status);
    return r;
  });
  const job = await w.nextJob();

  const t0 = Date.now();
  b.child.kill('SIGSTOP');
  t.after(() => b.child.kill('SIGCONT'));
  const r = await held;
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.ok(Date.now() - t0 <= 3000, `failed after ${Date.now() - t0} ms`);
  await waitUntil(() => a.router.listWorkers().length === 0, 3000, 'B worker gone from A listing');
  // The worker answers while B is frozen; B reads it only after SIGCONT.
  w.reply(job.id, 200, 'too late');
  const lateBefore = late((await getJson(a, '/metrics')).body);

  b.child.kill('SIGCONT');
  await waitUntil(() => a.cluster!.liveNodes === 2, 5000, 'B to rejoin');
  await waitUntil(() => a.router.listWorkers().length === 1, 2000, 'B worker listed again');
  // B, thawed, either dropped the job first (it saw A dead: the worker's answer is late at B)
  // or sent the answer on, and A dropped it as late. Either way it is counted once, never delivered.
  await waitUntil(
    async () => late((await getJson(a, '/metrics')).body) + late((await getJson(b, '/metrics')).body) === lateBefore + 1,
    3000,
    'the answer counted late at A or B',
  );
  assert.deepEqual(answers, [502], 'answered exactly once');

  // Serving again across the two nodes.
  await waitUntil(() => (a.cluster!.membership.peer('b')?.pools.get('acme/pool1')?.freeSlots ?? 0) > 0, 3000, 'B pool free again');
  const again = dispatch(a, 'acme', { pool: 'pool1', request: req });
  const job2 = await w.nextJob(3000);
  w.reply(job2.id, 200, 'again');
  assert.equal((await again).status, 200);
  await waitAllEmpty([a]);
});

test('NATS restarted: /readyz 503 and remote dispatches no_worker "cluster unreachable" while down; local workers served; rejoin after', async (t) => {
  const nats = await startNats(t);
  const a = await startTestServer(t, { nats: nats.url, nodeId: 'a' });
  const b = await startTestServer(t, { nats: nats.url, nodeId: 'b' });
  await waitFormed([a, b]);
  const wb = await FakeAgent.connect(t, b.wsUrl, { concurrency: 1 });
  const wa = await FakeAgent.connect(t, a.wsUrl, { name: 'local' });
  await waitAnnounced(a, b, 'pool1', 1, 1);
  assert.equal((await getJson(a, '/readyz')).status, 200);

  // A job held at B when NATS goes: failed at A within 3 s; B's late answer is dropped.
  const held = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 20_000, request: req });
  const job = await wb.nextJob();
  await nats.kill();
  await waitUntil(async () => (await getJson(a, '/readyz')).status === 503, 3000, '/readyz 503');
  assert.equal((await held).body.error.code, 'worker_disconnected');
  wb.reply(job.id, 200, 'late');

  const r = await dispatch(a, 'acme', { pool: 'pool1', request: req });
  assert.equal(r.status, 503);
  assert.equal(r.body.error.code, 'no_worker');
  assert.match(r.body.error.message, /cluster is unreachable/);
  const local = dispatch(a, 'acme', { pool: 'local', request: req });
  const lj = await wa.nextJob();
  wa.reply(lj.id, 200, 'local');
  assert.equal((await local).status, 200);

  await nats.restart();
  await waitUntil(async () => (await getJson(a, '/readyz')).status === 200, 5000, '/readyz 200 again');
  await waitFormed([a, b], 5000);
  await waitAnnounced(a, b, 'pool1', 1, 1);
  await waitUntil(() => a.router.listWorkers().length === 2, 3000, 'both workers listed at A again');
  const again = dispatch(a, 'acme', { pool: 'pool1', request: req });
  const j2 = await wb.nextJob(3000);
  wb.reply(j2.id, 200, 'again');
  assert.equal((await again).status, 200);
  await waitAllEmpty([a, b]);
});

test('NATS blip shorter than node death: an answer written while NATS was away reaches its caller when it returns', async (t) => {
  const nats = await startNats(t);
  const a = await startTestServer(t, { nats: nats.url, nodeId: 'a' });
  const b = await startTestServer(t, { nats: nats.url, nodeId: 'b' });
  await waitFormed([a, b]);
  const w = await FakeAgent.connect(t, b.wsUrl);
  await waitAnnounced(a, b);
  const p = dispatch(a, 'acme', { pool: 'pool1', timeoutMs: 10_000, request: req });
  const job = await w.nextJob();
  const t0 = Date.now();
  await nats.kill();
  await waitUntil(() => !b.cluster!.connected, 2000, 'B to notice NATS gone');
  w.reply(job.id, 200, 'kept');
  await waitUntil(() => b.cluster!.clusterStats().outbox === 1, 2000, 'the answer waiting in B outbox');
  await nats.restart();
  const r = await p;
  const outage = Date.now() - t0;
  if (r.status === 200) assert.equal(r.body.response.body, 'kept');
  else {
    // Only an outage past the liveness bound (1.4 s) may end it otherwise: then A saw B dead.
    assert.equal(r.body.error.code, 'worker_disconnected');
    assert.ok(outage > 1300, `failed after a ${outage} ms outage`);
    t.diagnostic(`outage ${outage} ms: longer than node death, the job failed as the contract says`);
  }
  await waitUntil(() => b.cluster!.clusterStats().outbox === 0, 5000, 'B outbox empty');
  await waitAllEmpty([a, b], 5000);
});

test('a node shuts down by itself while NATS is frozen or gone', async (t) => {
  const nats = await startNats(t);
  const a = await startTestServer(t, { nats: nats.url, nodeId: 'a' });
  const b = await startTestServer(t, { nats: nats.url, nodeId: 'b' });
  await waitFormed([a, b]);
  nats.freeze();
  t.after(() => nats.thaw());
  const t0 = Date.now();
  await a.close();
  assert.ok(Date.now() - t0 < 3000, `close took ${Date.now() - t0} ms with NATS frozen`);
  await nats.kill();
  const t1 = Date.now();
  await b.close();
  assert.ok(Date.now() - t1 < 3000, `close took ${Date.now() - t1} ms with NATS gone`);
});
