import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { FakeAgent, handshakeRefusal } from '../helpers/fake-agent.ts';
import { dispatch, getJson, startTestServer, TOKENS } from '../helpers/server.ts';
import { within } from '../helpers/wait.ts';

const body = { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: 'http://127.0.0.1:9/' } };

test('shutdown: refuses new dispatches, lets jobs in flight finish, then closes workers with 1001', async (t) => {
  const s = await startTestServer(t, { shutdownGraceMs: 10_000 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  const inFlight = dispatch(s, 'acme', body);
  const job = await a.nextJob();
  const closed = s.close();
  // Shutdown has begun (the server stops being ready at once) while the job is still held.
  assert.equal((await getJson(s, '/readyz')).status, 503);
  // The answer to the job still in flight gets through.
  a.reply(job.id, 200, 'finished during grace');
  const r = await within(inFlight, 5000, 'the answer of the job finished during the grace');
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body, 'finished during grace');
  const { code } = await within(a.closed, 5000, 'the server to close the worker once its jobs ended');
  assert.equal(code, 1001);
  await within(closed, 5000, 'shutdown to complete');
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
});

test('shutdown: while draining the server still answers: dispatch and /readyz 503; jobs left after the grace fail', async (t) => {
  // The grace must outlast the two requests made during it, even on a loaded machine.
  const s = await startTestServer(t, { shutdownGraceMs: 1500 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  const stuck = dispatch(s, 'acme', body);
  const job = await a.nextJob();
  const closed = s.close();
  const during = await dispatch(s, 'acme', body);
  assert.equal(during.status, 503);
  assert.equal(during.body.error.code, 'shutting_down');
  const ready = await fetch(`${s.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(ready.headers.get('connection'), 'close');
  await ready.body?.cancel();
  const r = await stuck;
  assert.equal(r.status, 503);
  assert.equal(r.body.error.code, 'shutting_down');
  const cancel = await a.next('cancel');
  assert.equal(cancel.id, job.id);
  assert.equal((await within(a.closed, 5000, 'the server to close the worker after the grace')).code, 1001);
  await within(closed, 5000, 'shutdown to complete');
});

test('shutdown: a large answer finishing during the grace reaches the client whole', async (t) => {
  const s = await startTestServer(t, { shutdownGraceMs: 10_000, maxPayloadBytes: 16 * 1024 * 1024 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  const big = 'y'.repeat(8 * 1024 * 1024);
  const inFlight = dispatch(s, 'acme', body);
  const job = await a.nextJob();
  const closed = s.close();
  a.reply(job.id, 200, big);
  const r = await within(inFlight, 10_000, 'the large answer');
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body.length, big.length);
  await within(closed, 10_000, 'shutdown to complete');
});

test('shutdown: new workers are refused while draining', async (t) => {
  const s = await startTestServer(t, { shutdownGraceMs: 5000 });
  const a = await FakeAgent.connect(t, s.wsUrl);
  const p = dispatch(s, 'acme', body);
  const job = await a.nextJob();
  const closed = s.close();
  const url = `${s.wsUrl}/v1/workers/connect?${new URLSearchParams({ suite: 'acme', name: 'pool1', concurrency: '1' })}`;
  const refused = await within(handshakeRefusal(url, [PROTOCOL_VERSION], { authorization: `Bearer ${TOKENS.worker}` }), 5000, 'the refusal of a new worker');
  assert.equal(refused.status, 503);
  assert.equal(refused.body?.error?.code, 'shutting_down');
  assert.equal(s.router.stats().workers, 1, 'only the worker connected before shutdown');
  a.reply(job.id, 200, 'answered while draining');
  const r = await within(p, 5000, 'the answer of the job held by the draining server');
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body, 'answered while draining');
  await within(closed, 5000, 'shutdown to complete');
});
